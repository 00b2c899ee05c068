"""SM2 signatures (GB/T 32918.2, GM/T 0009) with SM3 and the default ID.

Keys hold plain integers; each backend builds its own native handle on first
use and caches it on the key, so switching backends (tests, benchmarks) needs
no key conversion.

Only the default distinguishing ID ``1234567812345678`` is supported for
signing and verifying: tongsuopy cannot set another one. :func:`compute_za`
and :func:`sm2_e` take any ID because they are plain SM3 over public data.
"""

from __future__ import annotations

from . import _asn1, _backend, _curve
from .errors import InvalidKey, InvalidSignature
from .sm3 import sm3

DEFAULT_SM2_ID = b"1234567812345678"


def _check_uid(uid: bytes) -> bytes:
    if not isinstance(uid, bytes | bytearray | memoryview):
        raise TypeError("SM2 ID must be bytes")
    uid = bytes(uid)
    # ENTL is a 16-bit count of bits.
    if len(uid) * 8 > 0xFFFF:
        raise ValueError("SM2 ID longer than 8191 bytes")
    return uid


def _za(x: int, y: int, uid: bytes) -> bytes:
    entl = (len(uid) * 8).to_bytes(2, "big")
    n = _curve.COORD_LEN
    return sm3(entl + uid + _curve.CURVE_ZA_PARAMS + x.to_bytes(n, "big") + y.to_bytes(n, "big"))


def compute_za(public_key: SM2PublicKey, uid: bytes = DEFAULT_SM2_ID) -> bytes:
    """``Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA)``.

    :raise TypeError: ``uid`` is not bytes. :raise ValueError: ``uid`` too long.
    """
    uid = _check_uid(uid)
    if uid == DEFAULT_SM2_ID:
        return public_key._za
    return _za(public_key.x, public_key.y, uid)


def sm2_e(public_key: SM2PublicKey, message: bytes, uid: bytes = DEFAULT_SM2_ID) -> bytes:
    """``e = SM3(Z_A || M)``, the value an SM2 signature actually signs."""
    return sm3(compute_za(public_key, uid) + message)


def der_to_raw_signature(der: bytes) -> bytes:
    """Convert DER ``SEQUENCE {r, s}`` to 64-byte ``r || s``.

    :raise InvalidSignature: not canonical DER, or r/s outside [1, n-1].
    """
    return _asn1.raw_signature(*_asn1.decode_signature(der))


def raw_to_der_signature(raw: bytes) -> bytes:
    """Convert 64-byte ``r || s`` to DER ``SEQUENCE {r, s}``.

    :raise InvalidSignature: not 64 bytes, or r/s outside [1, n-1].
    """
    return _asn1.encode_signature(*_asn1.decode_raw_signature(raw))


class SM2PublicKey:
    """A validated point of sm2p256v1 (finite, on the curve)."""

    __slots__ = ("_x", "_y", "_za", "_handles")

    def __init__(self, x: int, y: int) -> None:
        """Prefer the ``from_*`` constructors. :raise InvalidKey: invalid point."""
        _curve.check_point(x, y)
        self._x = x
        self._y = y
        self._za = _za(x, y, DEFAULT_SM2_ID)
        self._handles: dict[str, object] = {}

    # -- constructors --

    @classmethod
    def from_point(cls, x: int, y: int) -> SM2PublicKey:
        """:raise InvalidKey: not a finite point of sm2p256v1."""
        return cls(x, y)

    @classmethod
    def from_uncompressed(cls, data: bytes) -> SM2PublicKey:
        """From ``04 || X || Y`` (65 bytes). :raise InvalidKey: other length/form or bad point."""
        return cls(*_curve.point_from_uncompressed(data))

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        """From SubjectPublicKeyInfo DER. :raise InvalidKey: malformed, other curve, bad point."""
        return cls(*_asn1.decode_spki(der))

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PublicKey:
        """From a ``PUBLIC KEY`` PEM. :raise InvalidKey: malformed, other curve, bad point."""
        return cls(*_asn1.decode_public_pem(pem))

    # -- encodings --

    @property
    def x(self) -> int:
        return self._x

    @property
    def y(self) -> int:
        return self._y

    def uncompressed(self) -> bytes:
        return _curve.point_to_uncompressed(self._x, self._y)

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER; starts with ``SM2_SPKI_DER_PREFIX``."""
        return _asn1.encode_spki(self._x, self._y)

    def to_pem(self) -> bytes:
        return _asn1.armor("PUBLIC KEY", self.to_der())

    def fingerprint(self) -> str:
        """Hex SM3 of the SPKI DER, used as key hint / ``kid``."""
        return sm3(self.to_der()).hex()

    # -- verification --

    def verify(self, message: bytes, signature: bytes) -> None:
        """Verify an SM2-with-SM3 signature under the default ID.

        ``signature`` may be DER or 64-byte raw ``r || s``.

        :raise InvalidSignature: malformed, out of range, or not valid for
            ``message`` (fail closed: nothing else is raised for bad input).
        """
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError("message must be bytes")
        if not isinstance(signature, bytes | bytearray | memoryview):
            raise InvalidSignature("SM2 signature must be bytes")
        signature = bytes(signature)
        r, s = _asn1.decode_any_signature(signature)
        # decode_* accept only canonical DER, so a DER input is passed as is.
        der = signature if signature[:1] == b"\x30" and len(signature) != 64 else _asn1.encode_signature(r, s)
        backend = _backend.current()
        handle = self._handles.get(backend.name)
        if handle is None:
            handle = self._handles[backend.name] = backend.public_handle(self._x, self._y)
        if not backend.verify(handle, self._za, bytes(message), der, r, s):
            raise InvalidSignature("SM2 signature does not verify")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SM2PublicKey):
            return NotImplemented
        return (self._x, self._y) == (other._x, other._y)

    def __hash__(self) -> int:
        return hash((self._x, self._y))

    def __repr__(self) -> str:
        return f"SM2PublicKey(fingerprint={self.fingerprint()[:16]}…)"


class SM2PrivateKey:
    """An SM2 private key with its public key; signs with SM3 and the default ID."""

    __slots__ = ("_d", "_public", "_handles")

    def __init__(self, d: int, public: SM2PublicKey, handles: dict[str, object] | None = None) -> None:
        """Internal; use :meth:`generate` or a ``from_*`` constructor, which check d against the point."""
        self._d = d
        self._public = public
        self._handles = handles or {}

    # -- constructors --

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A fresh key from the backend's CSPRNG (tongsuopy) or :mod:`secrets` (gmssl)."""
        backend = _backend.current()
        d, x, y, handle = backend.generate()
        return cls(d, SM2PublicKey(x, y), {backend.name: handle})

    @classmethod
    def from_int(cls, d: int) -> SM2PrivateKey:
        """:raise InvalidKey: d outside [1, n-2]."""
        _curve.check_private_int(d)
        backend = _backend.current()
        x, y, handle = backend.private_from_int(d)
        return cls(d, SM2PublicKey(x, y), {backend.name: handle})

    @classmethod
    def _from_parsed(cls, parsed: tuple[int, tuple[int, int] | None]) -> SM2PrivateKey:
        d, embedded = parsed
        key = cls.from_int(d)
        if embedded is not None and embedded != (key._public.x, key._public.y):
            raise InvalidKey("the public key stored with the private key does not match it")
        return key

    @classmethod
    def from_der(cls, der: bytes) -> SM2PrivateKey:
        """From PKCS#8 or SEC1 DER (unencrypted).

        :raise InvalidKey: malformed, other curve, d out of range, embedded
            public key inconsistent with d.
        """
        return cls._from_parsed(_asn1.decode_private_der(der))

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PrivateKey:
        """From a ``PRIVATE KEY`` (PKCS#8) or ``EC PRIVATE KEY`` (SEC1) PEM, unencrypted.

        :raise InvalidKey: as :meth:`from_der`, or encrypted / not a private key PEM.
        """
        return cls._from_parsed(_asn1.decode_private_pem(pem))

    # -- accessors and encodings --

    @property
    def private_int(self) -> int:
        return self._d

    def public_key(self) -> SM2PublicKey:
        return self._public

    def to_der(self) -> bytes:
        """Unencrypted PKCS#8 DER (the key store encrypts it)."""
        return _asn1.encode_pkcs8(self._d, self._public.x, self._public.y)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (the key store encrypts it)."""
        return _asn1.armor("PRIVATE KEY", self.to_der())

    # -- signing --

    def sign(self, message: bytes, *, raw: bool = False) -> bytes:
        """Sign ``message`` with SM2-with-SM3 under the default ID.

        Returns DER ``SEQUENCE {r, s}``, or 64-byte ``r || s`` when ``raw``.
        The nonce always comes from a CSPRNG; there is no way to pass one.

        :raise TypeError: ``message`` is not bytes.
        """
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError("message must be bytes")
        backend = _backend.current()
        handle = self._handles.get(backend.name)
        if handle is None:
            handle = self._handles[backend.name] = backend.private_handle(self._d, self._public.x, self._public.y)
        der = backend.sign(handle, self._public._za, bytes(message))
        return der_to_raw_signature(der) if raw else der

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public={self._public!r})"
