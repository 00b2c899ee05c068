"""GB/T 38540 structures: round trips, field layout, and the defensive DER loader."""

from __future__ import annotations

import pytest
from asn1crypto import core

from seal import asn1
from seal.asn1 import SESeal, SESFormatError, SESSignature, load_strict


def test_seal_round_trip_and_fields(material):
    seal = load_strict(SESeal, material.seal_der, what="SESeal")
    info = seal["eSealInfo"]
    assert info["header"].native == {"id": "ES", "version": 4, "vid": "XSN"}
    assert info["esID"].native == "6101260200000001"
    assert info["property"]["name"].native == "测试合同专用章"
    assert info["property"]["certListType"].native == 1
    assert [c.native for c in info["property"]["certList"].chosen] == [material.signer_der]
    assert info["picture"]["type"].native == "PNG"
    assert info["picture"]["data"].native == material.picture
    assert seal["signAlgID"].dotted == "1.2.156.10197.1.501"
    assert seal.dump(force=True) == material.seal_der


def test_signature_layout(material):
    signature = load_strict(SESSignature, material.signature_der, what="SES_Signature")
    tbs = signature["toSign"]
    assert tbs["version"].native == 4
    assert tbs["eseal"].dump() == material.seal_der  # the seal is embedded byte for byte
    assert tbs["dataHash"].native == material.digest
    assert tbs["propertyInfo"].native == "xsn:sm3-digest"
    assert signature["cert"].native == material.signer_der
    # Outer tags: SEQUENCE { SEQUENCE, OCTET STRING, OID, BIT STRING }
    children = [child.parsed.tag for child in core.SequenceOf.load(material.signature_der, spec=core.Any)]
    assert children == [16, 4, 6, 3]


def test_oid_registered():
    from asn1crypto import algos

    assert algos.SignedDigestAlgorithmId("sm2_sm3").dotted == "1.2.156.10197.1.501"
    assert algos.SignedDigestAlgorithmId("1.2.156.10197.1.501").native == "sm2_sm3"


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda d: d[:-1], "der_truncated"),
    (lambda d: d[: len(d) // 2], "der_truncated"),
    (lambda d: d + b"\x00", "der_trailing_data"),
    (lambda d: b"\x31" + d[1:], "der_wrong_tag"),
    (lambda d: b"", "der_truncated"),
    (lambda d: b"\x30\x80" + d[2:], "der_not_canonical"),
    (lambda d: b"\x30\x85\x01\x02\x03\x04\x05", "der_oversized"),
])
def test_malformed_outer(material, mutate, code):
    with pytest.raises(SESFormatError) as info:
        load_strict(SESSignature, mutate(material.signature_der), what="SES_Signature")
    assert info.value.code == code
    assert info.value.status == 422


def test_oversized_refused_before_parsing():
    with pytest.raises(SESFormatError) as info:
        load_strict(SESSignature, b"\x30" + b"\x00" * (asn1.MAX_DER_SIZE + 1), what="x")
    assert info.value.code == "der_oversized"
    assert info.value.to_dict()["limit"] == asn1.MAX_DER_SIZE


def test_inner_wrong_tag(material):
    der = bytearray(material.seal_der)
    # eSealInfo's header SEQUENCE starts a few bytes in; turn its first inner tag into a SET.
    seal = SESeal.load(bytes(der))
    header_offset = material.seal_der.index(seal["eSealInfo"]["header"].dump())
    der[header_offset] = 0x31
    with pytest.raises(SESFormatError) as info:
        load_strict(SESeal, bytes(der), what="SESeal")
    assert info.value.code in ("der_wrong_tag", "ses_malformed")


def test_non_canonical_inner_length(material):
    # Re-encode the esID IA5String with a long-form length: valid BER, not DER.
    seal = SESeal.load(material.seal_der)
    es = seal["eSealInfo"]["esID"].dump()
    ber = b"\x16\x81" + bytes([len(es) - 2]) + es[2:]
    info_der = seal["eSealInfo"].dump()
    new_info_body = info_der.replace(es, ber, 1)
    assert new_info_body != info_der
    with pytest.raises(SESFormatError):
        load_strict(SESeal, material.seal_der.replace(es, ber, 1), what="SESeal")
