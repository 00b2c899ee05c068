"""The signing hot path (``ses.SigningMaterial``) makes exactly the DER the asn1crypto builder makes."""

from __future__ import annotations

import base64
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
    # The last two: a long-form first length whose bytes run up to or past the end.
    for junk in (b"\x30\x03abc", b"\x30\x85" + bytes(10), b"\x30\x86" + bytes(6), b"\x30\xff" + bytes(6)):
        assert prepared.signature_digest(junk) == sm3(junk)
        assert prepared.signature_base64(junk) == base64.b64encode(junk).decode()


def test_bad_digest_length_is_refused(material):
    with pytest.raises(ValueError):
        ses.SigningMaterial(material.seal_der, material.signer_der).tbs_der(material.now, b"short")


@pytest.mark.parametrize("seal_length", [23_000, 23_001, 23_002, 50, 70_000, 1, 0])
def test_base64_and_digest_are_the_plain_ones_for_every_layout(material, seal_length):
    """The base64 and SM3 state kept per layout, then the rest's: the same as encoding and hashing
    the whole DER. The seal's length (three alignments against base64's 3-byte groups, one
    small enough that ``TBS_Sign``'s length fits the one-byte form, one past 64 KiB for the
    three-byte form, and seals too short to hold a 3-byte group) and property_info's (which
    moves the headers' lengths) vary the layout; the seal bytes are arbitrary, only their place
    in the DER matters here. The base64 of the seal is kept per place, whatever the headers say."""
    seal_bytes = bytes(range(251)) * (seal_length // 251) + bytes(seal_length % 251)
    prepared = ses.SigningMaterial(seal_bytes, material.signer_der)
    for info in ("a", "ab", "abc", "x" * 200):
        for _ in range(2):  # the second time from what the first kept
            der = prepared.signature_der(prepared.tbs_der(material.now, material.digest, info), b"sig")
            assert prepared._seal_start(der) is not None  # noqa: SLF001 - the per-layout path is taken
            assert prepared.signature_base64(der) == base64.b64encode(der).decode()
            assert prepared.signature_digest(der) == sm3(der)
    assert len(prepared._seal_base64) <= 3  # noqa: SLF001 - one per seal offset met, not per header
    for foreign in (material.signature_der, b"", b"\x30\x03abc"):
        assert prepared.signature_base64(foreign) == base64.b64encode(foreign).decode()
