"""DER/PEM encoding of SM2 keys and signatures, independent of the backend.

Keys and signatures are parsed here, strictly, so that both backends see the
same validated integers and reject the same malformed inputs with
:class:`InvalidKey` / :class:`InvalidSignature`.
"""

from __future__ import annotations

from asn1crypto import algos, keys, pem

from . import _curve
from .errors import InvalidKey, InvalidSignature

SM2_CURVE_OID = "1.2.156.10197.1.301"
SM3_OID = "1.2.156.10197.1.401"
SM2_WITH_SM3_OID = "1.2.156.10197.1.501"
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"

# SEQUENCE { SEQUENCE { id-ecPublicKey, sm2p256v1 }, BIT STRING (66 bytes: 00 04 X Y) }
SM2_SPKI_DER_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_SPKI_LEN = len(SM2_SPKI_DER_PREFIX) + 1 + 2 * _curve.COORD_LEN

# asn1crypto does not know sm2p256v1; without this every SM2 key fails to
# parse. Registration is process-wide, so other modules get it by importing
# common.crypto.gm.
keys.NamedCurve.register("sm2p256v1", SM2_CURVE_OID, _curve.COORD_LEN)


# -- signatures ----------------------------------------------------------


def _der_integer(v: int) -> bytes:
    # Minimal two's-complement encoding of a positive integer: one extra byte
    # when the top bit is set so it does not read as negative.
    body = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return b"\x02" + bytes([len(body)]) + body


def _check_rs(r: int, s: int) -> None:
    if not (1 <= r < _curve.N and 1 <= s < _curve.N):
        raise InvalidSignature("SM2 signature r or s out of range [1, n-1]")


def encode_signature(r: int, s: int) -> bytes:
    """DER ``SEQUENCE { r INTEGER, s INTEGER }``; r and s must be in [1, n-1].

    :raise InvalidSignature: r or s out of range.
    """
    _check_rs(r, s)
    body = _der_integer(r) + _der_integer(s)
    # r, s < 2^256 so the body is at most 70 bytes: short-form length.
    return b"\x30" + bytes([len(body)]) + body


def _canonical_signature(der: bytes) -> tuple[int, int] | None:
    """``(r, s)`` if ``der`` is exactly ``encode_signature(r, s)``, else ``None``.

    The hot path of every verification: slicing plus one re-encoding costs a
    tenth of a full asn1crypto parse, and accepts exactly the same set of
    byte strings, because whatever the slicing guesses must re-encode to the
    input byte for byte.
    """
    n = len(der)
    if n < 8 or der[0] != 0x30 or der[1] != n - 2 or der[2] != 0x02:
        return None
    r_len = der[3]
    s_tag = 4 + r_len
    if s_tag + 2 > n or der[s_tag] != 0x02 or s_tag + 2 + der[s_tag + 1] != n:
        return None
    r = int.from_bytes(der[4:s_tag], "big")
    s = int.from_bytes(der[s_tag + 2 :], "big")
    if not (1 <= r < _curve.N and 1 <= s < _curve.N):
        return None
    if encode_signature(r, s) != der:
        return None
    return r, s


def decode_signature(der: bytes) -> tuple[int, int]:
    """Parse a DER SM2 signature strictly.

    Anything but the one canonical DER encoding (long-form or padded lengths,
    leading zero bytes, trailing data, wrong tags) is rejected, as are negative
    integers and r or s outside [1, n-1].

    :raise InvalidSignature: on any of the above.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise InvalidSignature("SM2 signature must be bytes")
    der = bytes(der)
    rs = _canonical_signature(der)
    if rs is not None:
        return rs
    # Not the canonical encoding of an in-range (r, s): it will be rejected
    # either way; asn1crypto tells us why, for the error message.
    if not 8 <= len(der) <= 72:
        raise InvalidSignature("SM2 DER signature has an impossible length")
    try:
        parsed = algos.DSASignature.load(der, strict=True)
        r = parsed["r"].native
        s = parsed["s"].native
    except Exception as exc:  # asn1crypto raises many types on garbage; the contract is one
        raise InvalidSignature(f"malformed SM2 DER signature: {exc}") from exc
    if not (isinstance(r, int) and isinstance(s, int)):
        raise InvalidSignature("malformed SM2 DER signature: r and s must be INTEGERs")
    _check_rs(r, s)
    # asn1crypto accepts some BER leniencies (e.g. padded integers); re-encoding
    # and comparing leaves exactly one accepted byte string per (r, s).
    if encode_signature(r, s) != der:
        raise InvalidSignature("SM2 DER signature is not canonical DER")
    return r, s


def raw_signature(r: int, s: int) -> bytes:
    n = _curve.COORD_LEN
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def decode_raw_signature(raw: bytes) -> tuple[int, int]:
    """Parse a 64-byte ``r || s`` signature.

    :raise InvalidSignature: wrong length or r/s out of range.
    """
    if not isinstance(raw, bytes | bytearray | memoryview) or len(raw) != 2 * _curve.COORD_LEN:
        raise InvalidSignature("raw SM2 signature must be 64 bytes r || s")
    raw = bytes(raw)
    r = int.from_bytes(raw[: _curve.COORD_LEN], "big")
    s = int.from_bytes(raw[_curve.COORD_LEN :], "big")
    _check_rs(r, s)
    return r, s


def decode_any_signature(signature: bytes) -> tuple[int, int]:
    """Accept DER or raw ``r || s``.

    A canonical DER signature is at most 72 bytes and starts with 0x30, so a
    64-byte input is ambiguous only if it is also valid DER; DER wins then
    because that is the documented wire format.

    :raise InvalidSignature: neither form parses.
    """
    if len(signature) == 2 * _curve.COORD_LEN and signature[:1] != b"\x30":
        return decode_raw_signature(signature)
    try:
        return decode_signature(signature)
    except InvalidSignature:
        if len(signature) == 2 * _curve.COORD_LEN:
            return decode_raw_signature(signature)
        raise


# -- public keys ---------------------------------------------------------


def encode_spki(x: int, y: int) -> bytes:
    return SM2_SPKI_DER_PREFIX + _curve.point_to_uncompressed(x, y)


def _check_sm2_algorithm(alg, what: str) -> None:
    oid = alg["algorithm"].dotted
    if oid != EC_PUBLIC_KEY_OID:
        raise InvalidKey(f"{what} is not an EC key (algorithm {oid})")
    params = alg["parameters"]
    if params.name != "named":
        raise InvalidKey(f"{what} uses explicit or implicit curve parameters; only named sm2p256v1")
    curve_oid = params.chosen.dotted
    if curve_oid != SM2_CURVE_OID:
        raise InvalidKey(f"{what} is on curve {curve_oid}, not sm2p256v1 ({SM2_CURVE_OID})")


def decode_spki(der: bytes) -> tuple[int, int]:
    """Parse a SubjectPublicKeyInfo holding an SM2 point.

    :raise InvalidKey: malformed DER, another algorithm or curve, bad point.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise InvalidKey("SM2 public key DER must be bytes")
    der = bytes(der)
    # The only valid encoding is fixed-size; take the fast exact path first.
    if len(der) == _SPKI_LEN and der.startswith(SM2_SPKI_DER_PREFIX):
        return _curve.point_from_uncompressed(der[len(SM2_SPKI_DER_PREFIX) :])
    try:
        info = keys.PublicKeyInfo.load(der, strict=True)
        _check_sm2_algorithm(info["algorithm"], "public key")
        point = info["public_key"].native
    except InvalidKey:
        raise
    except Exception as exc:  # asn1crypto raises many types on garbage; the contract is one
        raise InvalidKey(f"malformed SubjectPublicKeyInfo: {exc}") from exc
    return _curve.point_from_uncompressed(point)


# -- private keys --------------------------------------------------------


def encode_pkcs8(d: int, x: int, y: int) -> bytes:
    """PKCS#8 PrivateKeyInfo in the layout OpenSSL 3 writes for SM2 keys."""
    inner = keys.ECPrivateKey(
        {
            "version": "ecPrivkeyVer1",
            "private_key": d,
            "public_key": _curve.point_to_uncompressed(x, y),
        }
    )
    inner.set_key_size(_curve.COORD_LEN)
    info = keys.PrivateKeyInfo(
        {
            "version": 0,
            "private_key_algorithm": {
                "algorithm": "ec",
                "parameters": ("named", "sm2p256v1"),
            },
            "private_key": inner,
        }
    )
    return info.dump()


def _decode_ec_private_key(ec_key, *, need_params: bool) -> tuple[int, tuple[int, int] | None]:
    if ec_key["version"].native != "ecPrivkeyVer1":
        raise InvalidKey("unsupported ECPrivateKey version")
    params = ec_key["parameters"]
    if params.native is None:
        if need_params:
            raise InvalidKey("SEC1 EC private key without curve parameters")
    elif params.name != "named" or params.chosen.dotted != SM2_CURVE_OID:
        raise InvalidKey("EC private key is not on the sm2p256v1 curve")
    d = ec_key["private_key"].native
    point = ec_key["public_key"].native
    return d, (_curve.point_from_uncompressed(point) if point is not None else None)


def decode_private_der(der: bytes) -> tuple[int, tuple[int, int] | None]:
    """Parse PKCS#8 (preferred) or SEC1 DER into ``(d, embedded public point or None)``.

    :raise InvalidKey: malformed DER, another algorithm or curve, encrypted key.
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise InvalidKey("SM2 private key DER must be bytes")
    der = bytes(der)
    try:
        info = keys.PrivateKeyInfo.load(der, strict=True)
        if info["version"].native not in (0, 1):  # v1, or v2 (RFC 5958) which adds optional fields
            raise InvalidKey("unsupported PKCS#8 version")
        _check_sm2_algorithm(info["private_key_algorithm"], "private key")
        return _decode_ec_private_key(info["private_key"].parsed, need_params=False)
    except InvalidKey:
        # Well-formed PKCS#8 of the wrong kind: that is the useful message.
        raise
    except Exception as exc:  # asn1crypto raises many types on garbage; the contract is one
        pkcs8_error = exc
    try:
        return _decode_ec_private_key(keys.ECPrivateKey.load(der, strict=True), need_params=True)
    except InvalidKey:
        raise
    except Exception as exc:  # asn1crypto raises many types on garbage; the contract is one
        raise InvalidKey(f"malformed SM2 private key: not PKCS#8 ({pkcs8_error}) nor SEC1 ({exc})") from exc


def _pem_blocks(data: bytes) -> list[tuple[str, dict, bytes]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidKey("PEM must be bytes")
    data = bytes(data)
    if not pem.detect(data):
        raise InvalidKey("not PEM data")
    try:
        return list(pem.unarmor(data, multiple=True))
    except Exception as exc:  # asn1crypto raises many types on garbage; the contract is one
        raise InvalidKey(f"malformed PEM: {exc}") from exc


def decode_private_pem(data: bytes) -> tuple[int, tuple[int, int] | None]:
    """Parse a ``PRIVATE KEY`` (PKCS#8) or SEC1 PEM into ``(d, embedded public point or None)``.

    SEC1 is labelled ``EC PRIVATE KEY`` by most tools and ``SM2 PRIVATE KEY``
    by OpenSSL 3 (``pkey -traditional``); a leading ``EC``/``SM2 PARAMETERS``
    block, as ``openssl ecparam -genkey`` writes, is skipped.

    :raise InvalidKey: no usable block, encrypted key, or a bad key inside.
    """
    for type_name, headers, der in _pem_blocks(data):
        if type_name in ("EC PARAMETERS", "SM2 PARAMETERS"):
            continue
        if type_name == "ENCRYPTED PRIVATE KEY" or headers.get("Proc-Type", "").endswith("ENCRYPTED"):
            raise InvalidKey("encrypted private keys are not accepted here; decrypt in the key store")
        if type_name in ("PRIVATE KEY", "EC PRIVATE KEY", "SM2 PRIVATE KEY"):
            return decode_private_der(der)
        raise InvalidKey(f"unexpected PEM block {type_name!r} for a private key")
    raise InvalidKey("no private key in PEM")


def decode_public_pem(data: bytes) -> tuple[int, int]:
    """Parse a ``PUBLIC KEY`` PEM.

    :raise InvalidKey: wrong block type or a bad key inside.
    """
    blocks = _pem_blocks(data)
    if len(blocks) != 1 or blocks[0][0] != "PUBLIC KEY":
        raise InvalidKey("expected exactly one PEM 'PUBLIC KEY' block")
    return decode_spki(blocks[0][2])


def armor(type_name: str, der: bytes) -> bytes:
    return pem.armor(type_name, der)
