"""GM (Chinese national standard) cryptography for every xsn service.

* SM3 and SM4-GCM come from pyca/cryptography (native).
* SM2 signatures come from tongsuopy; where it cannot be imported (no Linux
  aarch64 wheel) a gmssl fallback is used with a logged warning (in production only
  when ``XSN_GM_BACKEND=gmssl`` asks for it: :func:`check_backend`). Set
  ``XSN_GM_BACKEND=tongsuopy|gmssl`` to force one; :func:`backend_name`
  reports the choice.
* Only the default SM2 ID ``1234567812345678`` is supported for signatures.

Every failure is a :class:`GMError` with a stable ``code``; malformed keys and
signatures raise :class:`InvalidKey` / :class:`InvalidSignature`, never
another exception type.
"""

from ._asn1 import SM2_CURVE_OID, SM2_SPKI_DER_PREFIX, SM2_WITH_SM3_OID, SM3_OID
from ._backend import backend_name, check_backend, use_backend
from .errors import GMError, InvalidKey, InvalidSignature
from .sm2 import (
    DEFAULT_SM2_ID,
    SM2PrivateKey,
    SM2PublicKey,
    compute_za,
    der_to_raw_signature,
    raw_to_der_signature,
    sm2_e,
)
from .sm3 import SM3Hasher, hmac_sm3, hmac_sm3_verify, sm3
from .sm4 import sm4_gcm_decrypt, sm4_gcm_encrypt

__all__ = [
    "DEFAULT_SM2_ID",
    "GMError",
    "InvalidKey",
    "InvalidSignature",
    "SM2PrivateKey",
    "SM2PublicKey",
    "SM2_CURVE_OID",
    "SM2_SPKI_DER_PREFIX",
    "SM2_WITH_SM3_OID",
    "SM3Hasher",
    "SM3_OID",
    "backend_name",
    "check_backend",
    "compute_za",
    "der_to_raw_signature",
    "hmac_sm3",
    "hmac_sm3_verify",
    "raw_to_der_signature",
    "sm2_e",
    "sm3",
    "sm4_gcm_decrypt",
    "sm4_gcm_encrypt",
    "use_backend",
]
