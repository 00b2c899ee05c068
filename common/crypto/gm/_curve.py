"""SM2 recommended-curve parameters and the public-data checks built on them.

Only comparisons and modular arithmetic on scalars live here; every operation
on points is left to the backends (tongsuopy, or gmssl in the fallback).
"""

from __future__ import annotations

from .errors import InvalidKey

# GB/T 32918.5 recommended curve sm2p256v1.
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

COORD_LEN = 32

# a || b || xG || yG, the fixed middle part of Z_A.
CURVE_ZA_PARAMS = b"".join(v.to_bytes(COORD_LEN, "big") for v in (A, B, GX, GY))


def check_point(x: int, y: int) -> None:
    """Check that (x, y) is a finite point of sm2p256v1.

    The cofactor is 1, so every finite point on the curve has order n and no
    subgroup check is needed.

    :raise InvalidKey: coordinates out of range or not on the curve.
    """
    if not (isinstance(x, int) and isinstance(y, int)):
        raise InvalidKey("SM2 public key coordinates must be integers")
    if not (0 <= x < P and 0 <= y < P):
        raise InvalidKey("SM2 public key coordinate out of range")
    if (y * y - (x * x * x + A * x + B)) % P != 0:
        raise InvalidKey("SM2 public key point is not on the sm2p256v1 curve")


def check_private_int(d: int) -> None:
    """Check an SM2 private scalar.

    SM2 needs (1 + d)^-1 mod n when signing, so d = n - 1 is excluded too.

    :raise InvalidKey: d outside [1, n - 2].
    """
    if not isinstance(d, int) or isinstance(d, bool):
        raise InvalidKey("SM2 private key must be an integer")
    if not 1 <= d <= N - 2:
        raise InvalidKey("SM2 private key out of range [1, n-2]")


def point_to_uncompressed(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(COORD_LEN, "big") + y.to_bytes(COORD_LEN, "big")


def point_from_uncompressed(data: bytes) -> tuple[int, int]:
    """Parse ``04 || X || Y`` and validate the point.

    :raise InvalidKey: wrong length, compressed/hybrid form, or off-curve point.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidKey("SM2 public point must be bytes")
    data = bytes(data)
    if len(data) != 1 + 2 * COORD_LEN or data[0] != 0x04:
        raise InvalidKey("SM2 public point must be 65 bytes, uncompressed (04 || X || Y)")
    x = int.from_bytes(data[1 : 1 + COORD_LEN], "big")
    y = int.from_bytes(data[1 + COORD_LEN :], "big")
    check_point(x, y)
    return x, y
