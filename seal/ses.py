"""Building and verifying GB/T 38540 seals (``SESeal``) and signatures (``SES_Signature``).

Pure functions: keys, certificates and status facts come in as arguments. The seal maker
signs DER(SES_SealInfo); a seal's signer signs DER(TBS_Sign). :func:`verify_ses_signature`
performs all five checks of STANDARDS.md §3 and reports each one separately:

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

from common.crypto.gm import SM2_WITH_SM3_OID, GMError, SM2PrivateKey, SM3Hasher, sm3
from seal import ca
from seal.asn1 import (
    CERT_LIST_CERTS,
    CERT_LIST_DIGESTS,
    SES_HEADER_ID,
    SES_VERSION,
    SESeal,
    SESFormatError,
    SESSealInfo,
    SESSignature,
    TBSSign,
    load_strict,
)

VENDOR_ID = "XSN"
PICTURE_SIZE_MM = 40  # displayed size of a round seal, width = height, in millimetres
SEAL_TYPE_ORGANISATION = 1
DEFAULT_PROPERTY_INFO = "xsn:sm3-digest"


def _seconds(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("aware datetimes only")
    return value.astimezone(UTC).replace(microsecond=0)


# -- building ------------------------------------------------------------------------------


def build_seal(*, maker_key: SM2PrivateKey, maker_cert_der: bytes, es_id: str, name: str,
               signer_cert_der: bytes, picture_png: bytes, created: datetime, valid_start: datetime,
               valid_end: datetime, picture_width_mm: int = PICTURE_SIZE_MM,
               picture_height_mm: int = PICTURE_SIZE_MM, seal_type: int = SEAL_TYPE_ORGANISATION) -> bytes:
    """DER ``SESeal``: the seal info signed by the maker key."""
    info = SESSealInfo({
        "header": {"id": SES_HEADER_ID, "version": SES_VERSION, "vid": VENDOR_ID},
        "esID": es_id,
        "property": {
            "type": seal_type,
            "name": name,
            "certListType": CERT_LIST_CERTS,
            "certList": ("certs", [signer_cert_der]),
            "createDate": _seconds(created),
            "validStart": _seconds(valid_start),
            "validEnd": _seconds(valid_end),
        },
        "picture": {"type": "PNG", "data": picture_png, "width": picture_width_mm,
                    "height": picture_height_mm},
    })
    info_der = info.dump()
    seal = SESeal({
        "eSealInfo": SESSealInfo.load(info_der),
        "cert": maker_cert_der,
        "signAlgID": SM2_WITH_SM3_OID,
        "signedValue": maker_key.sign(info_der),
    })
    return seal.dump()


def build_tbs_sign(*, seal_der: bytes, time_info: datetime, data_hash: bytes,
                   property_info: str = DEFAULT_PROPERTY_INFO) -> bytes:
    """DER ``TBS_Sign`` (version 4) embedding the seal as stored (no re-encoding)."""
    if len(data_hash) != 32:
        raise ValueError("dataHash is a 32-byte SM3 digest")
    tbs = TBSSign({
        "version": SES_VERSION,
        "eseal": SESeal.load(seal_der),
        "timeInfo": _seconds(time_info),
        "dataHash": data_hash,
        "propertyInfo": property_info,
    })
    return tbs.dump()


def build_signature(*, signer_key: SM2PrivateKey, signer_cert_der: bytes, seal_der: bytes, time_info: datetime,
                    data_hash: bytes, property_info: str = DEFAULT_PROPERTY_INFO) -> bytes:
    """DER ``SES_Signature``: TBS_Sign, the signer certificate, SM2-with-SM3, the signature."""
    tbs_der = build_tbs_sign(seal_der=seal_der, time_info=time_info, data_hash=data_hash,
                             property_info=property_info)
    signature = SESSignature({
        "toSign": TBSSign.load(tbs_der),
        "cert": signer_cert_der,
        "signatureAlgID": SM2_WITH_SM3_OID,
        "signature": signer_key.sign(tbs_der),
    })
    return signature.dump()


# -- the signing hot path ------------------------------------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _der_length(len(content)) + content


_VERSION_DER = _tlv(0x02, bytes((SES_VERSION,)))
_SM2_SM3_OID_DER = bytes.fromhex("06082a811ccf55018375")  # OBJECT IDENTIFIER 1.2.156.10197.1.501


class SigningMaterial:
    """One seal version's constant parts of every ``SES_Signature``, prepared once per process.

    A ``TBS_Sign`` is ``SEQUENCE { version, eseal, timeInfo, dataHash, propertyInfo }`` and an
    ``SES_Signature`` is ``SEQUENCE { toSign, cert, signatureAlgID, signature }``: the seal (tens
    of KiB with its picture) and the signer certificate are the same bytes in every signature
    made with this seal version. This builds the DER by concatenating the stored seal DER with
    the few small per-signature fields (byte-identical to :func:`build_signature`, which the
    tests check), and keeps the SM3 state after the constant prefix ``SEQUENCE header, toSign
    SEQUENCE header, version, eseal`` so that the signature's own digest hashes only the tail.

    Nothing here depends on a request: the material is keyed by the seal DER and the
    certificate DER themselves, so a changed seal (a new picture, a new ``SESeal``) is a new
    material, never a stale one.
    """

    def __init__(self, seal_der: bytes, signer_cert_der: bytes) -> None:
        self.seal_der = bytes(seal_der)
        self.signer_cert_der = bytes(signer_cert_der)
        self._cert_tlv = _tlv(0x04, self.signer_cert_der) + _SM2_SM3_OID_DER
        self._prefix_states: dict[bytes, SM3Hasher] = {}

    def tbs_der(self, time_info: datetime, data_hash: bytes, property_info: str = DEFAULT_PROPERTY_INFO) -> bytes:
        if len(data_hash) != 32:
            raise ValueError("dataHash is a 32-byte SM3 digest")
        when = _seconds(time_info)
        tail = (_tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode("ascii")) + _tlv(0x03, b"\x00" + data_hash)
                + _tlv(0x16, property_info.encode("ascii")))
        body_length = len(_VERSION_DER) + len(self.seal_der) + len(tail)
        return b"".join((b"\x30", _der_length(body_length), _VERSION_DER, self.seal_der, tail))

    def signature_der(self, tbs_der: bytes, signature: bytes) -> bytes:
        body_length = len(tbs_der) + len(self._cert_tlv) + len(_tlv(0x03, b"\x00" + signature))
        return b"".join((b"\x30", _der_length(body_length), tbs_der, self._cert_tlv,
                         _tlv(0x03, b"\x00" + signature)))

    def signature_digest(self, signature_der: bytes) -> bytes:
        """SM3 of a DER made by :meth:`signature_der`, hashing the seal bytes only once per layout."""
        # Outer header, then the TBS_Sign header, then version: all before the seal bytes.
        if len(signature_der) < 8:
            return sm3(signature_der)
        outer = 2 + (signature_der[1] & 0x7F if signature_der[1] & 0x80 else 0)
        inner = 2 + (signature_der[outer + 1] & 0x7F if signature_der[outer + 1] & 0x80 else 0)
        start = outer + inner + len(_VERSION_DER)
        end = start + len(self.seal_der)
        if not signature_der.startswith(self.seal_der, start):  # not our layout: hash it all
            return sm3(signature_der)
        key = signature_der[:start]
        state = self._prefix_states.get(key)
        if state is None:
            state = SM3Hasher(key).update(self.seal_der)
            if len(self._prefix_states) < 64:
                self._prefix_states[key] = state
        return state.copy().update(memoryview(signature_der)[end:]).digest()

    def sign(self, signer_key: SM2PrivateKey, *, time_info: datetime, data_hash: bytes,
             property_info: str = DEFAULT_PROPERTY_INFO) -> tuple[bytes, bytes]:
        """``(DER SES_Signature, its SM3 digest)``."""
        tbs = self.tbs_der(time_info, data_hash, property_info)
        der = self.signature_der(tbs, signer_key.sign(tbs))
        return der, self.signature_digest(der)


# -- parsing ---------------------------------------------------------------------------------


def _check_seal_fields(seal: SESeal) -> None:
    info = seal["eSealInfo"]
    header = info["header"]
    if header["id"].native != SES_HEADER_ID:
        raise SESFormatError(f"seal header id is {header['id'].native!r}, not 'ES'", code="ses_wrong_header")
    if header["version"].native != SES_VERSION:
        raise SESFormatError(f"seal version {header['version'].native} is not 4 (GB/T 38540)",
                             code="ses_wrong_version")
    if seal["signAlgID"].dotted != SM2_WITH_SM3_OID:
        raise SESFormatError(f"seal signature algorithm {seal['signAlgID'].dotted} is not SM2-with-SM3",
                             code="ses_wrong_oid")
    if info["property"]["certListType"].native not in (CERT_LIST_CERTS, CERT_LIST_DIGESTS):
        raise SESFormatError("certListType must be 1 (certs) or 2 (digests)", code="ses_malformed")


def parse_seal(der: bytes) -> SESeal:
    """Parse and sanity-check an untrusted ``SESeal``. :raise SESFormatError:"""
    seal = load_strict(SESeal, der, what="SESeal")
    _check_seal_fields(seal)
    return seal


def parse_signature(der: bytes) -> SESSignature:
    """Parse and sanity-check an untrusted ``SES_Signature``. :raise SESFormatError:"""
    signature = load_strict(SESSignature, der, what="SES_Signature")
    tbs = signature["toSign"]
    if tbs["version"].native != SES_VERSION:
        raise SESFormatError(f"TBS_Sign version {tbs['version'].native} is not 4", code="ses_wrong_version")
    if signature["signatureAlgID"].dotted != SM2_WITH_SM3_OID:
        raise SESFormatError(f"signature algorithm {signature['signatureAlgID'].dotted} is not SM2-with-SM3",
                             code="ses_wrong_oid")
    if len(tbs["dataHash"].native) != 32:
        raise SESFormatError("dataHash is not a 32-byte SM3 digest", code="ses_malformed")
    _check_seal_fields(tbs["eseal"])
    # The certificates inside are untrusted input too: parse them now, for the stable codes.
    ca.parse_certificate(signature["cert"].native)
    ca.parse_certificate(tbs["eseal"]["cert"].native)
    return signature


def seal_summary(seal: SESeal) -> dict[str, Any]:
    info = seal["eSealInfo"]
    prop = info["property"]
    return {
        "es_id": info["esID"].native,
        "name": prop["name"].native,
        "type": prop["type"].native,
        "valid_start": prop["validStart"].native.isoformat(),
        "valid_end": prop["validEnd"].native.isoformat(),
        "vendor": info["header"]["vid"].native,
    }


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
