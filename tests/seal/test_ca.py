"""The node CA's certificates: SM2-with-SM3, chaining, strict parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import x509

from common.crypto.gm import SM2PrivateKey
from seal import ca
from seal.asn1 import SESFormatError


def test_root_and_signer(material):
    root = ca.parse_certificate(material.maker_der)
    signer = ca.parse_certificate(material.signer_der)
    assert root.is_ca and not signer.is_ca
    assert ca.check_issued_by(root, root) is None
    assert ca.check_issued_by(signer, root) is None
    assert signer.public_key == material.signer_key.public_key()
    cert = x509.Certificate.load(material.signer_der)
    assert cert["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
    assert cert["signature_algorithm"]["parameters"].native is None
    assert "91610113MA6TXX001" in signer.subject_text


def test_foreign_issuer_detected(material):
    other_key = SM2PrivateKey.generate()
    now = datetime.now(UTC)
    other = ca.make_root(other_key, common_name="测试制章者", not_before=now, not_after=now + timedelta(days=1))
    why = ca.check_issued_by(ca.parse_certificate(material.signer_der), ca.parse_certificate(other))
    assert why is not None and "signature" in why
    assert ca.check_issued_by(ca.parse_certificate(material.signer_der),
                              ca.parse_certificate(material.signer_der)) is not None


def test_tampered_certificate_signature_fails(material):
    der = bytearray(material.signer_der)
    cn = "测试合同专用章".encode()
    at = bytes(der).index(cn)
    der[at] ^= 0x01  # still valid UTF-8? flip within the first byte keeps a lead byte
    tampered = bytes(der)
    try:
        parsed = ca.parse_certificate(tampered)
    except SESFormatError:
        return  # refusing to parse is also fine
    assert ca.check_issued_by(parsed, ca.parse_certificate(material.maker_der)) is not None


def test_wrong_signature_oid_and_curve(material):
    cert = x509.Certificate.load(material.signer_der)
    ecdsa = x509.Certificate({
        "tbs_certificate": cert["tbs_certificate"],
        "signature_algorithm": {"algorithm": "sha256_ecdsa"},
        "signature_value": cert["signature_value"].native,
    }).dump()
    with pytest.raises(SESFormatError) as info:
        ca.parse_certificate(ecdsa)
    assert info.value.code == "cert_wrong_oid"

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    from asn1crypto import keys

    tbs = cert["tbs_certificate"].copy()
    tbs["subject_public_key_info"] = keys.PublicKeyInfo.load(p256)
    wrong_curve = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": {"algorithm": "sm2_sm3"},
                                    "signature_value": cert["signature_value"].native}).dump()
    with pytest.raises(SESFormatError) as info:
        ca.parse_certificate(wrong_curve)
    assert info.value.code == "cert_wrong_curve"


def test_garbage_certificate():
    for garbage in (b"", b"\x30\x03\x02\x01\x01", b"\x04\x00", b"\x30" * 40):
        with pytest.raises(SESFormatError):
            ca.parse_certificate(garbage)


def test_validity_uses_generalized_time_after_2049():
    key = SM2PrivateKey.generate()
    start = datetime(2049, 12, 31, tzinfo=UTC)
    der = ca.make_root(key, common_name="x", not_before=start, not_after=datetime(2051, 1, 1, tzinfo=UTC))
    cert = x509.Certificate.load(der)
    validity = cert["tbs_certificate"]["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "general_time"
    assert ca.parse_certificate(der).not_after.year == 2051
