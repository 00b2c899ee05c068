"""SM2 through tongsuopy (Tongsuo, native): the production backend.

Tongsuo computes Z_A itself with the default ID ``1234567812345678`` and
tongsuopy offers no way to set another, which is why the public API only
supports the default ID.
"""

from __future__ import annotations

from tongsuopy.crypto import hashes
from tongsuopy.crypto.asymciphers import ec
from tongsuopy.crypto.exceptions import InvalidSignature as _TongsuoInvalidSignature

from . import _curve

name = "tongsuopy"

_CURVE = ec.SM2()
# One shared instance: building ECDSA(SM3()) per call is measurable at ~2k ops/s.
_ALGORITHM = ec.ECDSA(hashes.SM3())


def generate() -> tuple[int, int, int, object]:
    """Return ``(d, x, y, handle)`` for a fresh key drawn by Tongsuo's DRBG."""
    while True:
        key = ec.generate_private_key(_CURVE)
        nums = key.private_numbers()
        # Tongsuo already draws d in [1, n-2]; the loop only guards the contract.
        if 1 <= nums.private_value <= _curve.N - 2:
            pub = nums.public_numbers
            return nums.private_value, pub.x, pub.y, key


def private_from_int(d: int) -> tuple[int, int, object]:
    """Return ``(x, y, handle)`` for a validated scalar ``d``."""
    key = ec.derive_private_key(d, _CURVE)
    pub = key.public_key().public_numbers()
    return pub.x, pub.y, key


def private_handle(d: int, x: int, y: int) -> object:
    return ec.derive_private_key(d, _CURVE)


def public_handle(x: int, y: int) -> object:
    return ec.EllipticCurvePublicNumbers(x, y, _CURVE).public_key()


def sign(handle, za: bytes, message: bytes) -> bytes:
    """Sign and return DER. ``za`` is unused: Tongsuo derives Z_A from the key."""
    return handle.sign(message, _ALGORITHM)


def verify(handle, za: bytes, message: bytes, der: bytes, r: int, s: int) -> bool:
    try:
        handle.verify(der, message, _ALGORITHM)
    except _TongsuoInvalidSignature:
        return False
    return True
