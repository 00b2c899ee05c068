"""Offline-verifiable licence codes (QR), the trust list and the status list.

Plain Python with no database or Flask: the node uses it to make codes and lists, and
``xsn licenses verify-qr`` uses it to check them with nothing but two saved files.

**Code** (modelled on the EU Digital COVID Certificate, STANDARDS.md §4)::

    "XL1:" + Base45( zlib( COSE_Sign1 ) )

``COSE_Sign1`` is the RFC 9052 structure, CBOR tag 18: ``[protected, unprotected, payload,
signature]``. **SM2 profile** (no COSE algorithm is registered for SM2, so this is ours):
``protected`` = bstr of the CBOR map ``{1: -65601, 4: kid}`` where alg ``-65601`` (private
use range) means SM2 signature with SM3, user ID ``1234567812345678`` (GB/T 32918 default),
over the CBOR ``Sig_structure`` ``["Signature1", protected, h'', payload]`` exactly as RFC 9052
§4.4; the signature is raw ``r ‖ s`` (64 bytes, like ES256 in COSE); ``kid`` is the first 8
bytes of SM3(SubjectPublicKeyInfo DER) of the node's offline-code key. ``payload`` is a CWT
claims map (RFC 8392): ``1`` iss, ``4`` exp, ``6`` iat, and ``-65537`` the licence claims::

    {"id": identifier, "t": type code, "tn": type name, "n": face number, "i": issuer name,
     "h": masked holder name, "hc": masked holder code, "vf"/"vu": validity (ISO dates, vu may be
     null), "f": {authorised fields}, "p": purpose, "s": status-list index}

**Trust list**: JSON ``{"format": "xsn-trust-list/1", "issuer", "issued_at", "keys": [{"kid"
(hex), "alg": "SM2-SM3", "public_key" (base64 SPKI DER), "status"}]}``, fetched once and saved.

**Status list**: a bitstring with one bit per licence (``1`` = not valid: revoked, suspended,
superseded or expired), at least 131,072 bits so that fetching it reveals nothing about which
licence a verifier checks (W3C Bitstring Status List); bit ``i`` is bit ``7 - i % 8`` of byte
``i // 8``; zlib-compressed, base64. JSON ``{"format": "xsn-status-list/1", "issued_at",
"bits", "list", "kid", "signature"}``; ``signature`` is base64 raw SM2 over the RFC 8785
canonical JSON of the other members, by a key of the trust list.
"""

from __future__ import annotations

import base64
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import base45
import cbor2
import rfc8785

from common.crypto.gm import GMError, SM2PrivateKey, SM2PublicKey, sm3

PREFIX = "XL1:"
ALG_SM2_SM3 = -65601
CLAIMS_KEY = -65537
COSE_SIGN1_TAG = 18
MAX_CODE_CHARS = 4096  # a QR code holds at most 4,296 alphanumeric characters
MAX_INFLATED = 16384
TRUST_FORMAT, STATUS_FORMAT = "xsn-trust-list/1", "xsn-status-list/1"


class OfflineCodeInvalid(ValueError):
    """The code or a list did not verify; ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def key_id(public_key: SM2PublicKey) -> bytes:
    return sm3(public_key.to_der())[:8]


# Base45 (RFC 9285) decoding. The base45 package decodes one character and one triple at a time
# in Python (~70-120 µs a code, a fifth of an offline verification); this does the character
# lookup with bytes.translate and packs the triples with struct, about 3x faster. Encoding
# (once per code, at the node) stays with the package; tests check both agree.
_B45_CHARSET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_VALUES = bytes(_B45_CHARSET.index(c) if c in _B45_CHARSET else 255 for c in range(256))


def b45decode(text: str) -> bytes:
    """:raise ValueError: not Base45 (a character outside the alphabet, a dangling character, or
    a group whose value does not fit its bytes)."""
    values = text.encode("ascii").translate(_B45_VALUES)
    if 255 in values or len(values) % 3 == 1:
        raise ValueError("not Base45")
    full = len(values) - len(values) % 3
    groups = [c + 45 * d + 2025 * e
              for c, d, e in zip(values[0:full:3], values[1:full:3], values[2:full:3], strict=True)]
    try:
        out = struct.pack(f">{len(groups)}H", *groups)
    except struct.error:  # a triple above 0xFFFF
        raise ValueError("not Base45") from None
    if full < len(values):
        last = values[-2] + 45 * values[-1]
        if last > 0xFF:
            raise ValueError("not Base45")
        out += bytes((last,))
    return out


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload])


def make_code(claims: dict[str, Any], key: SM2PrivateKey, *, issuer: str, lifetime: int,
              now: float | None = None) -> str:
    """Sign licence ``claims`` into a code valid for ``lifetime`` seconds."""
    now = int(now if now is not None else time.time())
    payload = cbor2.dumps({1: issuer, 4: now + lifetime, 6: now, CLAIMS_KEY: claims})
    protected = cbor2.dumps({1: ALG_SM2_SM3, 4: key_id(key.public_key())})
    signature = key.sign(_sig_structure(protected, payload), raw=True)
    cose = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    return PREFIX + base45.b45encode(zlib.compress(cose, 9)).decode("ascii")


@dataclass
class TrustList:
    issuer: str
    keys: dict[bytes, SM2PublicKey] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> TrustList:
        """:raise OfflineCodeInvalid: not a trust list."""
        try:
            if data["format"] != TRUST_FORMAT:
                raise ValueError("format")
            keys = {bytes.fromhex(k["kid"]): SM2PublicKey.from_der(base64.b64decode(k["public_key"]))
                    for k in data["keys"] if k.get("alg") == "SM2-SM3"}
            return cls(str(data["issuer"]), keys)
        except (KeyError, TypeError, ValueError, GMError) as exc:
            raise OfflineCodeInvalid("invalid_trust_list", f"not a trust list: {exc}") from None


def trust_list_json(issuer: str, keys: list[tuple[SM2PublicKey, str]]) -> dict[str, Any]:
    return {"format": TRUST_FORMAT, "issuer": issuer, "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "keys": [{"kid": key_id(k).hex(), "alg": "SM2-SM3", "public_key": base64.b64encode(k.to_der()).decode(),
                      "status": status} for k, status in keys]}


def _decode(text: str) -> tuple[bytes, dict, bytes, bytes]:
    if not isinstance(text, str) or len(text) > MAX_CODE_CHARS:
        raise OfflineCodeInvalid("code_too_large", f"a code has at most {MAX_CODE_CHARS} characters")
    text = text.strip()
    if not text.startswith(PREFIX):
        raise OfflineCodeInvalid("malformed_code", f"a licence code starts with {PREFIX}")
    try:
        compressed = b45decode(text[len(PREFIX):])
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_INFLATED)
        if inflater.unconsumed_tail:
            raise OfflineCodeInvalid("code_too_large", "the code inflates beyond the allowed size")
        tag = cbor2.loads(raw)
        if not isinstance(tag, cbor2.CBORTag) or tag.tag != COSE_SIGN1_TAG or len(tag.value) != 4:
            raise ValueError("not a COSE_Sign1")
        protected, _unprotected, payload, signature = tag.value
        header = cbor2.loads(protected)
        if not all(isinstance(x, bytes) for x in (protected, payload, signature)) or not isinstance(header, dict):
            raise ValueError("COSE_Sign1 members have the wrong types")
    except OfflineCodeInvalid:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure of untrusted input is one refusal
        raise OfflineCodeInvalid("malformed_code", f"the code does not decode: {type(exc).__name__}") from None
    return protected, header, payload, signature


@dataclass(frozen=True)
class OfflineResult:
    claims: dict[str, Any]
    issued_at: int
    expires_at: int
    checks: dict[str, dict[str, Any]]


def verify_code(text: str, trust: TrustList, status: StatusList | None = None, *,
                now: float | None = None) -> OfflineResult:
    """Check a code's signature, expiry and (with a status list) the licence's status.

    :raise OfflineCodeInvalid: with ``code`` malformed_code, code_too_large, unsupported_algorithm,
        unknown_key, signature_invalid, code_expired or licence_not_valid.
    """
    protected, header, payload, signature = _decode(text)
    if header.get(1) != ALG_SM2_SM3:
        raise OfflineCodeInvalid("unsupported_algorithm", f"algorithm {header.get(1)!r} is not SM2-SM3")
    key = trust.keys.get(header.get(4)) if isinstance(header.get(4), bytes) else None
    if key is None:
        raise OfflineCodeInvalid("unknown_key", "the code was signed by a key not in the trust list")
    try:
        key.verify(_sig_structure(protected, payload), signature)
    except GMError:
        raise OfflineCodeInvalid("signature_invalid", "the code's signature does not verify") from None
    try:
        body = cbor2.loads(payload)
        claims, exp, iat = body[CLAIMS_KEY], int(body[4]), int(body[6])
        index = int(claims["s"])
    except Exception:  # noqa: BLE001 - a signed but malformed payload is still malformed
        raise OfflineCodeInvalid("malformed_code", "the signed payload lacks its claims") from None
    now = time.time() if now is None else now
    checks = {"signature": {"ok": True, "detail": f"SM2, key {header[4].hex()}"},
              "expiry": {"ok": now < exp, "detail": datetime.fromtimestamp(exp, UTC).isoformat()}}
    if now >= exp:
        raise OfflineCodeInvalid("code_expired", "the code has expired; ask the holder for a fresh one")
    if status is not None:
        revoked = status.is_set(index)
        checks["status"] = {"ok": not revoked, "detail": f"status list of {status.issued_at}"}
        if revoked:
            raise OfflineCodeInvalid("licence_not_valid", "the status list marks this licence as not valid")
    else:
        checks["status"] = {"ok": True, "skipped": True, "detail": "no status list given"}
    return OfflineResult(claims, iat, exp, checks)


# -- status list --------------------------------------------------------------------------------
def pack_bits(indexes: list[int], size: int) -> bytes:
    bits = bytearray((size + 7) // 8)
    for i in indexes:
        bits[i // 8] |= 0x80 >> (i % 8)
    return bytes(bits)


def status_list_json(invalid: list[int], size: int, key: SM2PrivateKey) -> dict[str, Any]:
    size = max(size, (max(invalid, default=0) // 8 + 1) * 8)
    body = {"format": STATUS_FORMAT, "issued_at": datetime.now(UTC).isoformat(timespec="seconds"), "bits": size,
            "list": base64.b64encode(zlib.compress(pack_bits(invalid, size), 9)).decode(),
            "kid": key_id(key.public_key()).hex()}
    body["signature"] = base64.b64encode(key.sign(rfc8785.dumps(body), raw=True)).decode()
    return body


@dataclass(frozen=True)
class StatusList:
    issued_at: str
    bits: bytes
    size: int

    @classmethod
    def from_json(cls, data: Any, trust: TrustList) -> StatusList:
        """:raise OfflineCodeInvalid: not a status list, or not signed by a trusted key."""
        try:
            body = {k: v for k, v in data.items() if k != "signature"}
            if body["format"] != STATUS_FORMAT:
                raise ValueError("format")
            key = trust.keys.get(bytes.fromhex(body["kid"]))
            if key is None:
                raise OfflineCodeInvalid("unknown_key", "the status list is signed by a key not in the trust list")
            key.verify(rfc8785.dumps(body), base64.b64decode(data["signature"]))
            inflater = zlib.decompressobj()
            bits = inflater.decompress(base64.b64decode(body["list"]), 1 << 22)
            size = int(body["bits"])
            if len(bits) * 8 < size:
                raise ValueError("the list is shorter than its size")
            return cls(str(body["issued_at"]), bits, size)
        except OfflineCodeInvalid:
            raise
        except GMError:
            raise OfflineCodeInvalid("signature_invalid", "the status list's signature does not verify") from None
        except (KeyError, TypeError, ValueError, AttributeError, zlib.error) as exc:
            raise OfflineCodeInvalid("invalid_status_list", f"not a status list: {exc}") from None

    def is_set(self, index: int) -> bool:
        if not 0 <= index < self.size:
            return True  # an index the list does not cover cannot be shown valid: fail closed
        return bool(self.bits[index // 8] & (0x80 >> (index % 8)))
