"""The node CA's X.509 structures: an SM2 root (the seal maker, 制章者) and signer certificates.

Pure functions over asn1crypto and ``common.crypto.gm``; the key store and the database are the
business of :mod:`seal.certificates` and :mod:`seal.seals`. Certificates are signed with SM2-with-SM3
(``1.2.156.10197.1.501``, no parameters) under the default ID of GM/T 0009/0015 over
DER(TBSCertificate), which is what OpenSSL 3 and GmSSL produce and verify.

Parsing untrusted certificates (they arrive inside seals and signatures) goes through
:func:`parse_certificate`, cached per DER so that a verifier does not re-parse the same
maker and signer certificates for every request.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import keys, x509

from common.crypto.gm import SM2_CURVE_OID, SM2_WITH_SM3_OID, GMError, SM2PrivateKey, SM2PublicKey, sm3
from seal.asn1 import SM2_SM3, SESFormatError, load_strict

MAX_CERT_SIZE = 16 * 1024
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"


def _time(value: datetime) -> x509.Time:
    value = value.astimezone(UTC).replace(microsecond=0)
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
    return x509.Time({"utc_time": value} if value.year < 2050 else {"general_time": value})


def _key_id(public_key: SM2PublicKey) -> bytes:
    return sm3(public_key.uncompressed())[:20]


def name(common_name: str, *, organization: str | None = None, org_code: str | None = None,
         unit: str | None = None) -> x509.Name:
    """An X.509 name, country CN; UTF8String values so Chinese names survive."""
    parts: dict[str, str] = {"country_name": "CN", "locality_name": "Xi'an"}
    if organization:
        parts["organization_name"] = organization
    if org_code:
        parts["organization_identifier"] = org_code  # 2.5.4.97: the credit code
    if unit:
        parts["organizational_unit_name"] = unit
    parts["common_name"] = common_name
    return x509.Name.build(parts, use_printable=False)


def build_certificate(*, subject: x509.Name, issuer: x509.Name, public_key: SM2PublicKey,
                      issuer_key: SM2PrivateKey, not_before: datetime, not_after: datetime,
                      is_ca: bool, serial: int | None = None) -> bytes:
    """A DER X.509 v3 certificate signed with SM2-with-SM3 by ``issuer_key``."""
    serial = serial or (secrets.randbits(63) | (1 << 62))
    if is_ca:
        key_usage = {"key_cert_sign", "crl_sign", "digital_signature"}
    else:
        key_usage = {"digital_signature", "non_repudiation"}
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": is_ca}},
        {"extn_id": "key_usage", "critical": True, "extn_value": key_usage},
        {"extn_id": "key_identifier", "critical": False, "extn_value": _key_id(public_key)},
        {"extn_id": "authority_key_identifier", "critical": False,
         "extn_value": {"key_identifier": _key_id(issuer_key.public_key())}},
    ]
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": {"algorithm": SM2_SM3},
        "issuer": issuer,
        "validity": {"not_before": _time(not_before), "not_after": _time(not_after)},
        "subject": subject,
        "subject_public_key_info": keys.PublicKeyInfo.load(public_key.to_der()),
        "extensions": extensions,
    })
    signature = issuer_key.sign(tbs.dump())
    cert = x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": {"algorithm": SM2_SM3},
        "signature_value": signature,
    })
    return cert.dump()


def make_root(key: SM2PrivateKey, *, common_name: str, not_before: datetime, not_after: datetime) -> bytes:
    """The self-signed root: the seal maker's certificate."""
    subject = name(common_name, organization="西安市共性业务支撑节点", unit="电子印章制章者")
    return build_certificate(subject=subject, issuer=subject, public_key=key.public_key(), issuer_key=key,
                             not_before=not_before, not_after=not_after, is_ca=True)


def issue_signer(ca_key: SM2PrivateKey, ca_cert_der: bytes, public_key: SM2PublicKey, *, common_name: str,
                 organization: str, org_code: str, not_before: datetime, not_after: datetime) -> bytes:
    """A signer certificate for one seal's key, issued by the maker."""
    issuer = parse_certificate(ca_cert_der).subject
    return build_certificate(subject=name(common_name, organization=organization, org_code=org_code),
                             issuer=issuer, public_key=public_key, issuer_key=ca_key,
                             not_before=not_before, not_after=not_after, is_ca=False)


@dataclass(frozen=True)
class ParsedCertificate:
    der: bytes
    serial: int
    subject: x509.Name
    issuer: x509.Name
    not_before: datetime
    not_after: datetime
    public_key: SM2PublicKey
    tbs_der: bytes
    signature: bytes
    is_ca: bool

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    @property
    def subject_text(self) -> str:
        return self.subject.human_friendly

    @property
    def fingerprint(self) -> str:
        """Hex SM3 of the certificate DER."""
        return sm3(self.der).hex()

    def valid_at(self, when: datetime) -> bool:
        return self.not_before <= when <= self.not_after


@functools.lru_cache(maxsize=1024)
def parse_certificate(der: bytes) -> ParsedCertificate:
    """Parse an SM2 X.509 certificate strictly (cached per DER).

    :raise SESFormatError: ``cert_malformed``, ``der_*``, ``cert_wrong_oid`` (signature
        algorithm is not SM2-with-SM3), ``cert_wrong_curve`` (key not on sm2p256v1).
    """
    try:
        cert = load_strict(x509.Certificate, der, what="certificate", max_size=MAX_CERT_SIZE)
    except SESFormatError as exc:
        if exc.code == "ses_malformed":
            exc.code = "cert_malformed"
        raise
    tbs = cert["tbs_certificate"]
    for field in (cert["signature_algorithm"], tbs["signature"]):
        oid = field["algorithm"].dotted
        if oid != SM2_WITH_SM3_OID:
            raise SESFormatError(f"certificate signature algorithm {oid} is not SM2-with-SM3 ({SM2_WITH_SM3_OID})",
                                 code="cert_wrong_oid")
    spki = tbs["subject_public_key_info"]
    alg = spki["algorithm"]
    if alg["algorithm"].dotted != EC_PUBLIC_KEY_OID:
        raise SESFormatError(f"certificate key algorithm {alg['algorithm'].dotted} is not an EC key",
                             code="cert_wrong_oid")
    params = alg["parameters"]
    if params.name != "named" or params.chosen.dotted != SM2_CURVE_OID:
        curve = params.chosen.dotted if params.name == "named" else params.name
        raise SESFormatError(f"certificate key is on curve {curve}, not sm2p256v1 ({SM2_CURVE_OID})",
                             code="cert_wrong_curve")
    try:
        public_key = SM2PublicKey.from_der(spki.dump())
    except GMError as exc:
        raise SESFormatError(f"certificate public key is invalid: {exc}", code="cert_wrong_curve") from exc
    constraints = cert.basic_constraints_value
    return ParsedCertificate(
        der=bytes(der), serial=tbs["serial_number"].native, subject=tbs["subject"], issuer=tbs["issuer"],
        not_before=tbs["validity"]["not_before"].native, not_after=tbs["validity"]["not_after"].native,
        public_key=public_key, tbs_der=tbs.dump(), signature=cert["signature_value"].native,
        is_ca=bool(constraints and constraints["ca"].native),
    )


def check_issued_by(cert: ParsedCertificate, issuer: ParsedCertificate) -> str | None:
    """``None`` if ``issuer`` signed ``cert`` (name chaining and SM2 signature), else why not."""
    if cert.issuer.dump() != issuer.subject.dump():
        return f"issuer name '{cert.issuer.human_friendly}' is not '{issuer.subject.human_friendly}'"
    if not issuer.is_ca:
        return "the issuing certificate is not a CA"
    try:
        issuer.public_key.verify(cert.tbs_der, cert.signature)
    except GMError:
        return "the certificate's SM2 signature does not verify under the issuer's key"
    return None
