"""Five-check verification of SES_Signature, each check reported separately."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.crypto.gm import SM2PrivateKey, sm3
from seal import ca, ses, ses_verify
from seal.asn1 import SESeal, SESSignature, TBSSign


def _checks(report):
    return {name: check.ok for name, check in report.checks.items()}


def test_valid_signature_all_five_checks(material):
    report = ses_verify.verify_ses_signature(material.signature_der, material.digest,
                                      trusted_root_cert_der=material.maker_der)
    assert list(report.checks) == list(ses_verify.CHECK_NAMES)
    assert report.valid and report.complete, report.to_dict()
    assert report.signed_at == material.signed_at
    assert report.seal["es_id"] == "6101260200000001"
    body = report.to_dict()
    assert body["valid"] is True and set(body["checks"]) == set(ses_verify.CHECK_NAMES)


def test_wrong_document_fails_only_digest_check(material):
    report = ses_verify.verify_ses_signature(material.signature_der, sm3(b"another document"),
                                      trusted_root_cert_der=material.maker_der)
    assert not report.valid
    assert _checks(report) == {"signature": True, "signer_in_seal": True, "seal": True,
                               "signer_certificate": True, "document_digest": False}


def test_no_digest_is_reported_as_skipped(material):
    report = ses_verify.verify_ses_signature(material.signature_der, None, trusted_root_cert_der=material.maker_der)
    assert report.valid and not report.complete
    assert report.checks["document_digest"].skipped


def _resign(material, tbs_der, *, key=None, cert=None):
    return SESSignature({"toSign": TBSSign.load(tbs_der), "cert": cert or material.signer_der,
                         "signatureAlgID": "1.2.156.10197.1.501",
                         "signature": (key or material.signer_key).sign(tbs_der)}).dump()


def test_tampered_tbs_fails_signature_check(material):
    signature = SESSignature.load(material.signature_der)
    tbs = TBSSign.load(signature["toSign"].dump())
    forged = SESSignature({"toSign": TBSSign({"version": 4, "eseal": SESeal.load(material.seal_der),
                                              "timeInfo": tbs["timeInfo"].native,
                                              "dataHash": sm3(b"forged"), "propertyInfo": "xsn:sm3-digest"}),
                           "cert": material.signer_der, "signatureAlgID": "1.2.156.10197.1.501",
                           "signature": signature["signature"].native}).dump()
    report = ses_verify.verify_ses_signature(forged, sm3(b"forged"), trusted_root_cert_der=material.maker_der)
    assert _checks(report)["signature"] is False
    assert not report.valid


def test_signer_not_in_seal(material):
    # A certificate the maker issued, but for another key, not listed in the seal.
    other_key = SM2PrivateKey.generate()
    other_cert = ca.issue_signer(material.maker_key, material.maker_der, other_key.public_key(), common_name="别的章",
                                 organization="别的单位", org_code="91110000600037341L",
                                 not_before=material.now - timedelta(hours=1),
                                 not_after=material.now + timedelta(days=1))
    tbs = ses.build_tbs_sign(seal_der=material.seal_der, time_info=material.signed_at, data_hash=material.digest)
    der = _resign(material, tbs, key=other_key, cert=other_cert)
    report = ses_verify.verify_ses_signature(der, material.digest, trusted_root_cert_der=material.maker_der)
    assert _checks(report) == {"signature": True, "signer_in_seal": False, "seal": True,
                               "signer_certificate": True, "document_digest": True}


def test_untrusted_maker(material, make_material):
    other = make_material()
    report = ses_verify.verify_ses_signature(other.signature_der, other.digest,
                                             trusted_root_cert_der=material.maker_der)
    assert not report.checks["seal"].ok and "trusted root" in report.checks["seal"].detail
    assert report.checks["signer_certificate"].ok  # issued by its own (untrusted) maker
    assert not report.valid


def test_signed_outside_seal_validity(material):
    late = material.now + timedelta(days=400)
    tbs = ses.build_tbs_sign(seal_der=material.seal_der, time_info=late, data_hash=material.digest)
    report = ses_verify.verify_ses_signature(_resign(material, tbs), material.digest,
                                      trusted_root_cert_der=material.maker_der)
    assert _checks(report) == {"signature": True, "signer_in_seal": True, "seal": False,
                               "signer_certificate": False, "document_digest": True}


def test_revoked_after_signing_is_valid_at_signing_time(material):
    later = ses_verify.StatusFact("revoked", material.signed_at + timedelta(minutes=5), "印章遗失")
    report = ses_verify.verify_ses_signature(material.signature_der, material.digest,
                                      trusted_root_cert_der=material.maker_der, seal_status=later,
                                      signer_cert_status=later)
    assert report.valid
    assert "valid at signing time, seal since revoked" in report.checks["seal"].detail
    assert "since revoked" in report.checks["signer_certificate"].detail


def test_revoked_before_signing_fails(material):
    earlier = ses_verify.StatusFact("revoked", material.signed_at - timedelta(minutes=5), "印章遗失")
    report = ses_verify.verify_ses_signature(material.signature_der, material.digest,
                                      trusted_root_cert_der=material.maker_der, seal_status=earlier)
    assert not report.checks["seal"].ok and not report.valid
    suspended = ses_verify.StatusFact("suspended", material.signed_at - timedelta(minutes=5))
    report = ses_verify.verify_ses_signature(material.signature_der, material.digest,
                                      trusted_root_cert_der=material.maker_der, signer_cert_status=suspended)
    assert not report.checks["signer_certificate"].ok


def test_tampered_seal_info_fails_maker_check(material):
    seal = SESeal.load(material.seal_der)
    info = seal["eSealInfo"].copy()
    info["esID"] = "6101269999999999"
    forged_seal = SESeal({"eSealInfo": info, "cert": material.maker_der, "signAlgID": "1.2.156.10197.1.501",
                          "signedValue": seal["signedValue"].native}).dump()
    tbs = ses.build_tbs_sign(seal_der=forged_seal, time_info=material.signed_at, data_hash=material.digest)
    report = ses_verify.verify_ses_signature(_resign(material, tbs), material.digest,
                                      trusted_root_cert_der=material.maker_der)
    assert report.checks["signature"].ok and not report.checks["seal"].ok
    assert "maker's signature" in report.checks["seal"].detail


def test_garbage_gives_error_not_exception():
    for garbage in (b"", b"\x30\x00", b"\x04\x02ab", bytes(100)):
        report = ses_verify.verify_ses_signature(garbage, None)
        assert not report.valid and report.error["code"].startswith(("der_", "ses_"))


def test_expired_since_noted(material):
    report = ses_verify.verify_ses_signature(material.signature_der, material.digest,
                                      trusted_root_cert_der=material.maker_der,
                                      at=datetime.now(UTC) + timedelta(days=4000))
    assert report.valid
    assert any("validity ended" in note for note in report.notes)
