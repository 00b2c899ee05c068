"""The signing hot path (``ses.SigningMaterial``) makes exactly the DER the asn1crypto builder makes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.crypto.gm import SM2_WITH_SM3_OID, sm3
from seal import ses, ses_verify
from seal.asn1 import SESSignature, TBSSign


@pytest.mark.parametrize("property_info", ["x", ses.DEFAULT_PROPERTY_INFO, "p" * 120, "q" * 255])
def test_material_matches_the_reference_builder(material, property_info):
    prepared = ses.SigningMaterial(material.seal_der, material.signer_der)
    when = material.now + timedelta(seconds=7)
    tbs = prepared.tbs_der(when, material.digest, property_info)
    assert tbs == ses.build_tbs_sign(seal_der=material.seal_der, time_info=when, data_hash=material.digest,
                                     property_info=property_info)
    for _ in range(3):  # the cached SM3 prefix state is reused, never consumed
        der, digest = prepared.sign(material.signer_key, time_info=when, data_hash=material.digest,
                                    property_info=property_info)
        assert digest == sm3(der)
        signature = SESSignature.load(der)
        reference = SESSignature({"toSign": TBSSign.load(tbs), "cert": material.signer_der,
                                  "signatureAlgID": SM2_WITH_SM3_OID,
                                  "signature": signature["signature"].native}).dump()
        assert der == reference
        report = ses_verify.verify_ses_signature(der, material.digest)
        assert report.valid, report.to_dict()


def test_digest_of_a_foreign_layout_is_still_the_plain_sm3(material):
    prepared = ses.SigningMaterial(material.seal_der, material.signer_der)
    assert prepared.signature_digest(material.signature_der) == sm3(material.signature_der)
    other = bytes(material.signature_der[:-1]) + bytes([material.signature_der[-1] ^ 1])
    assert prepared.signature_digest(other) == sm3(other)
    for junk in (b"\x30\x03abc", b"\x30\x85" + bytes(10)):
        assert prepared.signature_digest(junk) == sm3(junk)


def test_bad_digest_length_is_refused(material):
    with pytest.raises(ValueError):
        ses.SigningMaterial(material.seal_der, material.signer_der).tbs_der(material.now, b"short")


def test_base64_is_the_plain_encoding_for_every_layout(material):
    """The base64 kept per layout, then the rest's: the same text as encoding the whole DER,
    whatever the lengths (property_info moves where the seal ends against 3-byte groups)."""
    import base64

    prepared = ses.SigningMaterial(material.seal_der, material.signer_der)
    for info in ("a", "ab", "abc", "x" * 200):
        for _ in range(3):
            der, _digest = prepared.sign(material.signer_key, time_info=material.now, data_hash=material.digest,
                                         property_info=info)
            assert prepared.signature_base64(der) == base64.b64encode(der).decode()
    for foreign in (material.signature_der, b"", b"\x30\x03abc"):
        assert prepared.signature_base64(foreign) == base64.b64encode(foreign).decode()
