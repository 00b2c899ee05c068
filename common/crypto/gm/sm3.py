"""SM3 hashing and HMAC-SM3 (GB/T 32905), on pyca/cryptography's native SM3."""

from __future__ import annotations

import hmac as _stdlib_hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _crypto_hmac

DIGEST_SIZE = 32
BLOCK_SIZE = 64

_SM3 = hashes.SM3()
# Copying an untouched context skips the per-call algorithm lookup, which is a
# third of the cost of hashing 1 KiB.
_TEMPLATE = hashes.Hash(_SM3)


def sm3(data: bytes) -> bytes:
    """Return the 32-byte SM3 digest of ``data``.

    :raise TypeError: ``data`` is not bytes-like.
    """
    h = _TEMPLATE.copy()
    h.update(data)
    return h.finalize()


class SM3Hasher:
    """Incremental SM3 with a hashlib-like interface.

    ``update`` returns the hasher so calls chain; ``digest`` does not end the
    computation, so more data may be added afterwards.
    """

    name = "sm3"
    digest_size = DIGEST_SIZE
    block_size = BLOCK_SIZE

    __slots__ = ("_ctx",)

    def __init__(self, data: bytes = b"") -> None:
        self._ctx = _TEMPLATE.copy()
        if data:
            self._ctx.update(data)

    def update(self, data: bytes) -> SM3Hasher:
        self._ctx.update(data)
        return self

    def digest(self) -> bytes:
        return self._ctx.copy().finalize()

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> SM3Hasher:
        clone = SM3Hasher.__new__(SM3Hasher)
        clone._ctx = self._ctx.copy()
        return clone


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """Return the 32-byte HMAC-SM3 (RFC 2104 construction) of ``data``.

    :raise TypeError: ``key`` or ``data`` is not bytes-like.
    """
    h = _crypto_hmac.HMAC(key, _SM3)
    h.update(data)
    return h.finalize()


def hmac_sm3_verify(key: bytes, data: bytes, mac: bytes) -> bool:
    """Check an HMAC-SM3 tag in constant time; any mismatch, including length, is ``False``."""
    if not isinstance(mac, bytes | bytearray | memoryview):
        return False
    return _stdlib_hmac.compare_digest(hmac_sm3(key, data), bytes(mac))
