"""Building and parsing GB/T 38540 seals (``SESeal``) and signatures (``SES_Signature``).

Pure functions: keys and certificates come in as arguments. The seal maker signs
DER(SES_SealInfo); a seal's signer signs DER(TBS_Sign). Verification (the five checks of
STANDARDS.md §3) is :mod:`seal.ses_verify`.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from common.crypto.gm import SM2_WITH_SM3_OID, SM2PrivateKey, SM3Hasher, sm3
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
        self._seal_base64: dict[int, str] = {}

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

    def _seal_start(self, signature_der: bytes) -> int | None:
        """Where the seal's bytes start in a DER made by :meth:`signature_der`, or ``None`` when
        it is not laid out that way. Before the seal: the outer header, the ``TBS_Sign`` header,
        ``version``; those bytes vary with the lengths only (a handful of layouts per seal)."""
        if len(signature_der) < 8:
            return None
        outer = 2 + (signature_der[1] & 0x7F if signature_der[1] & 0x80 else 0)
        if outer + 1 >= len(signature_der):  # a long-form length running past the end
            return None
        inner = 2 + (signature_der[outer + 1] & 0x7F if signature_der[outer + 1] & 0x80 else 0)
        start = outer + inner + len(_VERSION_DER)
        return start if signature_der.startswith(self.seal_der, start) else None

    def signature_digest(self, signature_der: bytes) -> bytes:
        """SM3 of a DER made by :meth:`signature_der`, hashing the seal bytes only once per layout."""
        start = self._seal_start(signature_der)
        if start is None:  # not our layout: hash it all
            return sm3(signature_der)
        key = signature_der[:start]
        state = self._prefix_states.get(key)
        if state is None:
            state = SM3Hasher(key).update(self.seal_der)
            if len(self._prefix_states) < 64:
                self._prefix_states[key] = state
        return state.copy().update(memoryview(signature_der)[start + len(self.seal_der):]).digest()

    def signature_base64(self, signature_der: bytes) -> str:
        """``base64(signature_der)``, encoding the seal bytes only once per place of the seal.

        Why: every signing answer carries its DER in base64, and the seal is nearly all of it
        (~23 KB; about 5 % of a batch signature's worker CPU). Base64 maps each 3 bytes to 4
        characters on their own, so the DER cut at multiples of 3 encodes piece by piece to the
        very same text: the short header up to the first multiple of 3 at or after the seal's
        start, the seal from there to the last multiple of 3 inside it (kept per start: the
        headers' sizes give a handful of starts, whatever their length values), and the rest.
        """
        start = self._seal_start(signature_der)
        if start is None:
            return base64.b64encode(signature_der).decode("ascii")
        head = start + (-start) % 3
        cut = start + len(self.seal_der)
        cut -= cut % 3
        if head > cut:  # a seal shorter than a 3-byte group: nothing to keep
            return base64.b64encode(signature_der).decode("ascii")
        middle = self._seal_base64.get(start)
        if middle is None:
            middle = base64.b64encode(memoryview(self.seal_der)[head - start:cut - start]).decode("ascii")
            if len(self._seal_base64) < 64:
                self._seal_base64[start] = middle
        view = memoryview(signature_der)
        return (base64.b64encode(view[:head]).decode("ascii") + middle
                + base64.b64encode(view[cut:]).decode("ascii"))

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
