"""GB/T 38540-2020 ("v4") electronic seal structures, defined with asn1crypto.

The field lists follow STANDARDS.md §3 exactly::

    SESeal        ::= SEQUENCE { eSealInfo SES_SealInfo, cert OCTET STRING,
                                 signAlgID OBJECT IDENTIFIER, signedValue BIT STRING }
    SES_SealInfo  ::= SEQUENCE { header SES_Header, esID IA5String, property SES_ESPropertyInfo,
                                 picture SES_ESPictrueInfo, extDatas ExtensionDatas OPTIONAL }
    SES_Header    ::= SEQUENCE { id IA5String ("ES"), version INTEGER (4), vid IA5String }
    SES_ESPropertyInfo ::= SEQUENCE { type INTEGER, name UTF8String, certListType INTEGER,
                                 certList SES_CertList, createDate GeneralizedTime,
                                 validStart GeneralizedTime, validEnd GeneralizedTime }
    SES_CertList  ::= CHOICE { certs SEQUENCE OF OCTET STRING, certDigestList SEQUENCE OF CertDigestObj }
    SES_ESPictrueInfo ::= SEQUENCE { type IA5String, data OCTET STRING, width INTEGER, height INTEGER }
    SES_Signature ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING, signatureAlgID OBJECT IDENTIFIER,
                                 signature BIT STRING, timeStamp [0] EXPLICIT BIT STRING OPTIONAL }
    TBS_Sign      ::= SEQUENCE { version INTEGER, eseal SESeal, timeInfo GeneralizedTime,
                                 dataHash BIT STRING, propertyInfo IA5String,
                                 extDatas [0] EXPLICIT ExtensionDatas OPTIONAL }

``ExtensionDatas ::= SEQUENCE OF ExtData`` with ``ExtData ::= SEQUENCE { extnID OBJECT IDENTIFIER,
critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`` and ``CertDigestObj ::= SEQUENCE {
type PrintableString, value OCTET STRING }`` as in the open implementations. Both
``SES_CertList`` alternatives are SEQUENCE OF and therefore share the universal SEQUENCE tag
in the field list; we encode ``certs`` untagged (the form the open implementations write) and
``certDigestList`` with a context tag ``[1]`` so that the CHOICE is decodable: seals we make
always use ``certs`` (``certListType`` 1).

Untrusted DER goes through :func:`load_strict`, which never raises anything but
:class:`SESFormatError` (a problem+json ``Problem`` with a stable ``code``).
"""

from __future__ import annotations

from asn1crypto import algos, core

from common.crypto.gm import SM2_WITH_SM3_OID, SM3_OID
from common.errors import Problem

# SM2-with-SM3 signatures (GM/T 0006). asn1crypto knows neither; register them process-wide
# (``common.crypto.gm`` already registered the curve ``sm2p256v1`` = 1.2.156.10197.1.301).
SM2_SM3 = "sm2_sm3"


def _register_oid(cls: type[core.ObjectIdentifier], dotted: str, name: str) -> None:
    cls._map[dotted] = name
    if cls._reverse_map is not None:
        cls._reverse_map[name] = dotted


_register_oid(algos.SignedDigestAlgorithmId, SM2_WITH_SM3_OID, SM2_SM3)
_register_oid(algos.DigestAlgorithmId, SM3_OID, "sm3")

SES_VERSION = 4
SES_HEADER_ID = "ES"
CERT_LIST_CERTS = 1
CERT_LIST_DIGESTS = 2
# Untrusted input larger than this is refused before parsing. A seal carries a picture of
# at most 256 KiB (seal.images) plus a few certificates; a signature carries one seal.
MAX_DER_SIZE = 512 * 1024


class SESFormatError(Problem):
    """Malformed or unacceptable seal / signature DER. ``code`` says which way."""

    status, code, title = 422, "ses_malformed", "Malformed electronic seal structure"


# -- structures ---------------------------------------------------------------------------


class ExtData(core.Sequence):
    _fields = [
        ("extnID", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extnValue", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):
    _child_spec = ExtData


class SESHeader(core.Sequence):
    _fields = [
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertDigestObj(core.Sequence):
    _fields = [
        ("type", core.PrintableString),
        ("value", core.OctetString),
    ]


class Certs(core.SequenceOf):
    _child_spec = core.OctetString


class CertDigestList(core.SequenceOf):
    _child_spec = CertDigestObj


class SESCertList(core.Choice):
    _alternatives = [
        ("certs", Certs),
        ("certDigestList", CertDigestList, {"implicit": 1}),
    ]


class SESESPropertyInfo(core.Sequence):
    _fields = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("certListType", core.Integer),
        ("certList", SESCertList),
        ("createDate", core.GeneralizedTime),
        ("validStart", core.GeneralizedTime),
        ("validEnd", core.GeneralizedTime),
    ]


class SESESPictrueInfo(core.Sequence):  # sic: "Pictrue" is the standard's spelling
    _fields = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class SESSealInfo(core.Sequence):
    _fields = [
        ("header", SESHeader),
        ("esID", core.IA5String),
        ("property", SESESPropertyInfo),
        ("picture", SESESPictrueInfo),
        ("extDatas", ExtensionDatas, {"optional": True}),
    ]


class SESeal(core.Sequence):
    _fields = [
        ("eSealInfo", SESSealInfo),
        ("cert", core.OctetString),
        ("signAlgID", core.ObjectIdentifier),
        ("signedValue", core.OctetBitString),
    ]


class TBSSign(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("eseal", SESeal),
        ("timeInfo", core.GeneralizedTime),
        ("dataHash", core.OctetBitString),
        ("propertyInfo", core.IA5String),
        ("extDatas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignature(core.Sequence):
    _fields = [
        ("toSign", TBSSign),
        ("cert", core.OctetString),
        ("signatureAlgID", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("timeStamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# -- defensive parsing --------------------------------------------------------------------


def _outer_length(data: bytes) -> int:
    """Total length of the first TLV per its own header. :raise SESFormatError:"""
    if len(data) < 2:
        raise SESFormatError("the DER is truncated: no tag and length", code="der_truncated")
    if data[0] != 0x30:
        raise SESFormatError(f"expected a SEQUENCE (tag 0x30), found tag 0x{data[0]:02x}", code="der_wrong_tag")
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0:
        raise SESFormatError("indefinite length is not DER", code="der_not_canonical")
    if count > 4:
        raise SESFormatError("the length field is absurdly long", code="der_oversized")
    if len(data) < 2 + count:
        raise SESFormatError("the DER is truncated inside the length", code="der_truncated")
    length = int.from_bytes(data[2 : 2 + count], "big")
    if length < 0x80 or length >> (8 * (count - 1)) == 0:
        raise SESFormatError("the length is not minimally encoded", code="der_not_canonical")
    return 2 + count + length


def _classify(exc: Exception) -> str:
    text = str(exc).lower()
    if "insufficient data" in text or "truncat" in text:
        return "der_truncated"
    if "extra data" in text or "trailing" in text:
        return "der_trailing_data"
    if "tag" in text or "class" in text or "method" in text:
        return "der_wrong_tag"
    return "ses_malformed"


def _force(value: core.Asn1Value) -> None:
    """Parse every lazily-decoded child, so a malformed inner field fails here, not later."""
    if isinstance(value, core.Choice):
        _force(value.chosen)
    elif isinstance(value, core.Sequence | core.SequenceOf):
        for child in value:
            _force(value[child] if isinstance(value, core.Sequence) else child)
    else:
        value.native  # noqa: B018 - parsing is the point


def load_strict(spec: type[core.Asn1Value], data: bytes, *, what: str, max_size: int = MAX_DER_SIZE):
    """Parse untrusted DER into ``spec``, refusing anything but one canonical DER value.

    :raise SESFormatError: ``der_oversized``, ``der_truncated``, ``der_trailing_data``,
        ``der_wrong_tag``, ``der_not_canonical`` or ``ses_malformed``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SESFormatError(f"{what} must be bytes", code="ses_malformed")
    data = bytes(data)
    if len(data) > max_size:
        raise SESFormatError(f"{what} is {len(data)} bytes; the limit is {max_size}", code="der_oversized",
                             limit=max_size)
    total = _outer_length(data)
    if total > len(data):
        raise SESFormatError(f"{what} is truncated: {total} bytes declared, {len(data)} present",
                             code="der_truncated")
    if total < len(data):
        raise SESFormatError(f"{what} has {len(data) - total} bytes after the end of the DER value",
                             code="der_trailing_data")
    try:
        parsed = spec.load(data, strict=True)
        _force(parsed)
        canonical = parsed.dump(force=True)
    except SESFormatError:
        raise
    except Exception as exc:  # asn1crypto raises many types on garbage; the contract is one
        raise SESFormatError(f"{what} is not a valid {spec.__name__}: {exc}", code=_classify(exc)) from exc
    if canonical != data:
        raise SESFormatError(f"{what} is not in canonical DER", code="der_not_canonical")
    return spec.load(data, strict=True)  # a fresh, unmodified instance (dump(force) rewrote the old)
