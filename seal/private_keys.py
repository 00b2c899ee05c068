"""The node's SM2 private keys, decrypted from the key store once per process.

A key never changes under its ``kid`` (the key store binds the kid into the ciphertext), so the
decrypted key is cached by kid for the life of the process: signing does not pay an SM4
decryption per signature.
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from common.crypto.gm import SM2PrivateKey
from common.crypto.keystore import KeyStore
from common.errors import Problem
from seal.models import SigningKey

MAKER_PURPOSE = "seal-maker"
SEAL_KEY_PURPOSE = "seal"

_keys: dict[str, SM2PrivateKey] = {}
_keys_lock = threading.Lock()


def key_store(session: Session, kek: bytes) -> KeyStore:
    return KeyStore(session, SigningKey, kek)


def private_key(session: Session, kek: bytes, kid: str) -> SM2PrivateKey:
    """The decrypted SM2 key of ``kid``, cached for the life of the process."""
    key = _keys.get(kid)
    if key is None:
        key = key_store(session, kek).private_key(kid)
        if not isinstance(key, SM2PrivateKey):
            raise Problem(f"key {kid} is not an SM2 key", code="key_algorithm_unsupported", status=500)
        with _keys_lock:
            _keys[kid] = key
    return key
