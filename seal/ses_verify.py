"""Verifying a GB/T 38540 ``SES_Signature``: the five checks of STANDARDS.md §3, each reported.

Pure functions: certificates and status facts come in as arguments. :func:`verify_ses_signature`
performs all five checks and reports each one separately:

1. ``signature``       the SM2 signature over DER(TBS_Sign) with the signer certificate;
2. ``signer_in_seal``  the signer certificate is in the seal's certificate list;
3. ``seal``            the maker's signature over the seal info, the maker certificate
                       (trusted root or issued by it) and the seal's validity window at
                       signing time, plus the seal's status when the caller knows it;
4. ``signer_certificate`` issued by the maker, valid at signing time, not revoked before
                       signing (when the caller knows its status);
5. ``document_digest`` ``dataHash`` equals the SM3 of the document.

Revocation and suspension are not visible offline: the service layer looks them up and
passes :class:`StatusFact` objects. A seal revoked *after* the signing time still passes
check 3 with the detail "valid at signing time, seal since revoked".
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.crypto.gm import GMError, sm3
from seal import ca
from seal.asn1 import (
    SESFormatError,
)
from seal.ses import parse_signature, seal_summary

# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    skipped: bool = False  # not performed (no input for it); ``ok`` is then True

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "skipped": self.skipped, "detail": self.detail}


@dataclass(frozen=True)
class StatusFact:
    """What the service knows about a seal's or certificate's status (not visible offline)."""

    status: str  # active | suspended | revoked
    since: datetime | None = None
    reason: str | None = None


CHECK_NAMES = ("signature", "signer_in_seal", "seal", "signer_certificate", "document_digest")


@dataclass
class VerificationReport:
    checks: OrderedDict[str, CheckResult] = field(default_factory=OrderedDict)
    signed_at: datetime | None = None
    seal: dict[str, Any] | None = None
    signer: dict[str, Any] | None = None
    data_hash: str | None = None
    notes: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None  # a parse error: the structure itself is unusable

    @property
    def valid(self) -> bool:
        return self.error is None and len(self.checks) == len(CHECK_NAMES) and all(
            c.ok for c in self.checks.values())

    @property
    def complete(self) -> bool:
        """Every check was actually performed (none skipped for lack of input)."""
        return self.valid and not any(c.skipped for c in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "complete": self.complete,
            "checks": {name: check.to_dict() for name, check in self.checks.items()},
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "seal": self.seal,
            "signer": self.signer,
            "data_hash": self.data_hash,
            "notes": self.notes,
            "error": self.error,
        }


def _status_check(fact: StatusFact | None, signed_at: datetime, what: str) -> CheckResult | None:
    """``None`` when the status does not decide anything; else the check result."""
    if fact is None or fact.status == "active":
        return None
    since = fact.since
    reason = f" ({fact.reason})" if fact.reason else ""
    if since is not None and since > signed_at:
        return CheckResult(True, f"valid at signing time, {what} since {fact.status} at "
                                 f"{since.isoformat()}{reason}")
    return CheckResult(False, f"{what} was {fact.status} at signing time{reason}")


def verify_ses_signature(ses_der: bytes, document_digest: bytes | None, *,
                         trusted_root_cert_der: bytes | None = None, at: datetime | None = None,
                         seal_status: StatusFact | None = None,
                         signer_cert_status: StatusFact | None = None) -> VerificationReport:
    """Verify an ``SES_Signature`` and report all five checks separately.

    ``document_digest`` is the SM3 of the document (``None``: check 5 is skipped, reported
    as such). ``trusted_root_cert_der`` pins the maker (``None``: the maker certificate in
    the seal is taken at its word, reported in check 3's detail). ``at`` is "now" for the
    notes on what expired since signing. Never raises for bad input: a structure that does
    not parse gives a report with ``error`` set and ``valid`` false.
    """
    report = VerificationReport()
    now = at or datetime.now(UTC)
    try:
        signature = parse_signature(ses_der)
    except SESFormatError as exc:
        report.error = {"code": exc.code, "detail": exc.detail}
        return report
    tbs = signature["toSign"]
    seal = tbs["eseal"]
    info = seal["eSealInfo"]
    signed_at = tbs["timeInfo"].native
    data_hash = tbs["dataHash"].native
    report.signed_at = signed_at
    report.data_hash = data_hash.hex()
    report.seal = seal_summary(seal)
    signer = ca.parse_certificate(signature["cert"].native)
    maker = ca.parse_certificate(seal["cert"].native)
    report.signer = {"subject": signer.subject_text, "serial": signer.serial_hex,
                     "not_before": signer.not_before.isoformat(), "not_after": signer.not_after.isoformat()}
    checks = report.checks

    # (1) the signer's SM2 signature over DER(TBS_Sign)
    try:
        signer.public_key.verify(tbs.dump(), signature["signature"].native)
        checks["signature"] = CheckResult(True, "SM2 signature over DER(TBS_Sign) verifies with the signer certificate")
    except GMError:
        checks["signature"] = CheckResult(False, "SM2 signature over DER(TBS_Sign) does not verify")

    # (2) the signer certificate is one of the seal's certificates
    cert_list = info["property"]["certList"]
    if cert_list.name == "certs":
        listed = any(item.native == signer.der for item in cert_list.chosen)
    else:
        digest = sm3(signer.der)
        sha256 = hashlib.sha256(signer.der).digest()
        listed = any(
            (obj["type"].native.upper() == "SM3" and obj["value"].native == digest)
            or (obj["type"].native.upper() in ("SHA256", "SHA-256") and obj["value"].native == sha256)
            for obj in cert_list.chosen)
    checks["signer_in_seal"] = CheckResult(
        listed, "the signer certificate is in the seal's certificate list" if listed
        else "the signer certificate is not in the seal's certificate list")

    # (3) the maker's signature, the maker certificate, the seal's validity at signing time
    problems: list[str] = []
    try:
        maker.public_key.verify(info.dump(), seal["signedValue"].native)
    except GMError:
        problems.append("the maker's signature over the seal info does not verify")
    if trusted_root_cert_der is not None:
        root = ca.parse_certificate(bytes(trusted_root_cert_der))
        if maker.der != root.der:
            why = ca.check_issued_by(maker, root)
            if why:
                problems.append(f"the maker certificate is not the trusted root nor issued by it: {why}")
        maker_trust = "the maker certificate is the trusted root"
    else:
        maker_trust = "the maker certificate was not checked against a trusted root"
        why = ca.check_issued_by(maker, maker)
        if why:
            problems.append(f"the maker certificate is not a valid self-signed root: {why}")
    if not maker.valid_at(signed_at):
        problems.append("the maker certificate was not valid at signing time")
    prop = info["property"]
    valid_start, valid_end = prop["validStart"].native, prop["validEnd"].native
    if not valid_start <= signed_at <= valid_end:
        problems.append(f"signed at {signed_at.isoformat()}, outside the seal's validity "
                        f"{valid_start.isoformat()} – {valid_end.isoformat()}")
    status = _status_check(seal_status, signed_at, "seal")
    if problems:
        checks["seal"] = CheckResult(False, "; ".join(problems))
    elif status is not None:
        checks["seal"] = status
    else:
        detail = f"maker signature verifies; {maker_trust}; the seal was within its validity at signing time"
        if seal_status is None:
            detail += "; seal status not known offline"
        checks["seal"] = CheckResult(True, detail)
    if now > valid_end:
        report.notes.append(f"the seal's validity ended at {valid_end.isoformat()} (after signing)")

    # (4) the signer certificate: issued by the maker, valid at signing time, not revoked then
    problems = []
    why = ca.check_issued_by(signer, maker)
    if why:
        problems.append(f"the signer certificate is not issued by the seal maker: {why}")
    if not signer.valid_at(signed_at):
        problems.append("the signer certificate was not valid at signing time")
    status = _status_check(signer_cert_status, signed_at, "signer certificate")
    if problems:
        checks["signer_certificate"] = CheckResult(False, "; ".join(problems))
    elif status is not None:
        checks["signer_certificate"] = status
    else:
        detail = "issued by the seal maker and valid at signing time"
        detail += "; not revoked" if signer_cert_status is not None else "; revocation status not known offline"
        checks["signer_certificate"] = CheckResult(True, detail)
    if now > signer.not_after:
        report.notes.append(f"the signer certificate expired at {signer.not_after.isoformat()} (after signing)")

    # (5) the document digest
    if document_digest is None:
        checks["document_digest"] = CheckResult(True, "no document or digest supplied: not compared", skipped=True)
    elif bytes(document_digest) == data_hash:
        checks["document_digest"] = CheckResult(True, "dataHash equals the SM3 digest of the document")
    else:
        checks["document_digest"] = CheckResult(False, "dataHash differs from the SM3 digest of the document")
    return report
