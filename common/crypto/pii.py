"""Personal data at rest: SM4-GCM encryption and HMAC-SM3 blind indexes, per service.

Two keys are derived from the service KEK so that neither the data key nor the index key is
the KEK itself, and the index key cannot decrypt: ``HMAC-SM3(KEK, "<service>:pii")[:16]``
encrypts, ``HMAC-SM3(KEK, "<service>:pii-index")`` keys the blind index. Each ciphertext is
bound to its field name (GCM additional data) so a ciphertext cannot be moved to another
column and decrypted there. (The same construction as ``identity.pii``, moved down here for
the second service that needs it.)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from common.crypto.gm import hmac_sm3, sm4_gcm_decrypt, sm4_gcm_encrypt


@dataclass(frozen=True)
class PiiCipher:
    data_key: bytes
    index_key: bytes

    @classmethod
    def from_kek(cls, kek: bytes, service: str) -> PiiCipher:
        return cls(data_key=hmac_sm3(kek, f"{service}:pii".encode())[:16],
                   index_key=hmac_sm3(kek, f"{service}:pii-index".encode()))

    def encrypt(self, field: str, value: str) -> str:
        blob = sm4_gcm_encrypt(self.data_key, value.encode(), aad=field.encode())
        return base64.b64encode(blob).decode("ascii")

    def decrypt(self, field: str, value: str) -> str:
        """:raise common.crypto.gm.GMError: the ciphertext was altered or belongs to another field."""
        return sm4_gcm_decrypt(self.data_key, base64.b64decode(value), aad=field.encode()).decode()

    def index(self, field: str, value: str) -> str:
        """Deterministic keyed digest of a canonical value, for exact-match lookup."""
        return hmac_sm3(self.index_key, f"{field}:{value}".encode()).hex()


def mask_code(value: str) -> str:
    """``6101**********1234``: first four and last four visible (ID numbers, credit codes)."""
    return value[:4] + "*" * (len(value) - 8) + value[-4:] if len(value) > 8 else "*" * len(value)


def mask_id_number(value: str) -> str:
    """``6101**********1234``: region prefix and last four visible."""
    return value[:4] + "*" * (len(value) - 8) + value[-4:] if len(value) > 8 else "*" * len(value)


def mask_mobile(value: str) -> str:
    """``138****1234``."""
    return f"{value[:3]}****{value[-4:]}" if len(value) >= 7 else "*" * len(value)


def mask_email(value: str) -> str:
    """``d***@example.test``: the first character of the local part and the domain."""
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"
