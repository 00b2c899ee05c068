"""SM2 through gmssl (pure Python): a slow fallback where tongsuopy has no wheel.

gmssl is used only for its scalar multiplication. Everything it gets wrong or
leaves out is done here instead:

* it draws nonces from ``random`` (Mersenne Twister, predictable): we always
  pass ``k`` drawn from :mod:`secrets`;
* its ``sign``/``verify`` take the digest e, not the message: we compute
  ``e = SM3(Z_A || M)`` ourselves (its own ``sign`` hashes nothing);
* its ``verify`` has no range checks: r, s and the public point are validated
  by the caller before we get here;
* ``CryptSM2(public_key=...)`` strips the ``04`` prefix with ``str.lstrip``,
  which also eats leading ``0``/``4`` digits of X: we set the attribute
  directly.

It is not constant-time; :mod:`common.crypto.gm._backend` logs a warning when it is used.
"""

from __future__ import annotations

import secrets

from gmssl import sm2 as _gmssl_sm2

from . import _asn1, _curve
from .sm3 import sm3

name = "gmssl"

_G = _gmssl_sm2.default_ecc_table["g"]


def _crypt(d: int | None, x: int, y: int) -> _gmssl_sm2.CryptSM2:
    obj = _gmssl_sm2.CryptSM2(private_key=None if d is None else f"{d:064x}", public_key="")
    # Set after construction: the constructor's lstrip("04") corrupts some keys.
    obj.public_key = f"{x:064x}{y:064x}"
    return obj


def _derive_point(d: int) -> tuple[int, int]:
    xy = _crypt(None, _curve.GX, _curve.GY)._kg(d, _G)
    if xy is None:  # d*G at infinity; unreachable for d in [1, n-2]
        raise ValueError("scalar multiplication gave the point at infinity")
    x, y = int(xy[:64], 16), int(xy[64:128], 16)
    _curve.check_point(x, y)
    return x, y


def generate() -> tuple[int, int, int, object]:
    d = secrets.randbelow(_curve.N - 2) + 1
    x, y, handle = private_from_int(d)
    return d, x, y, handle


def private_from_int(d: int) -> tuple[int, int, object]:
    x, y = _derive_point(d)
    return x, y, _crypt(d, x, y)


def private_handle(d: int, x: int, y: int) -> object:
    # Both halves on purpose: a gmssl object with only a private key signs wrongly.
    return _crypt(d, x, y)


def public_handle(x: int, y: int) -> object:
    return _crypt(None, x, y)


def _sign_digest(handle, e: bytes, k: int) -> tuple[int, int] | None:
    out = handle.sign(e, f"{k:064x}")
    if out is None:  # r = 0, r + k = n or s = 0: the caller draws another k
        return None
    r, s = int(out[:64], 16), int(out[64:], 16)
    if not (1 <= r < _curve.N and 1 <= s < _curve.N):
        return None
    return r, s


def sign(handle, za: bytes, message: bytes) -> bytes:
    e = sm3(za + message)
    while True:
        k = secrets.randbelow(_curve.N - 1) + 1  # uniform in [1, n-1]
        rs = _sign_digest(handle, e, k)
        if rs is not None:
            return _asn1.encode_signature(*rs)


def verify(handle, za: bytes, message: bytes, der: bytes, r: int, s: int) -> bool:
    e = sm3(za + message)
    try:
        return handle.verify(f"{r:064x}{s:064x}", e) is True
    except (TypeError, ValueError, IndexError):
        # gmssl indexes into None when an intermediate sum is the point at
        # infinity; that can only come from a forged signature.
        return False


def _sign_with_fixed_k_for_tests(d: int, x: int, y: int, e: bytes, k: int) -> tuple[int, int] | None:
    """Known-answer tests only: sign digest ``e`` with a caller-chosen nonce.

    Never called from :mod:`common.crypto.gm.sm2`; a chosen k reveals the private key.
    """
    return _sign_digest(_crypt(d, x, y), e, k)
