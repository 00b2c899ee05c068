"""SM4-GCM authenticated encryption (GB/T 32907 block cipher, NIST SP 800-38D mode).

Wire format: ``nonce (12) || ciphertext || tag (16)``. Nonces are random, so a
single key must not encrypt more than about 2^32 messages (the usual bound for
random 96-bit GCM nonces); the key store rotates data keys well before that.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import GMError, InvalidKey

KEY_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16

DECRYPT_FAILED = "sm4_decrypt_failed"


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray | memoryview) or len(key) != KEY_SIZE:
        raise InvalidKey("SM4 key must be exactly 16 bytes", code="sm4_invalid_key")


def sm4_gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext`` (and authenticate ``aad``).

    :raise InvalidKey: key is not 16 bytes (code ``sm4_invalid_key``).
    """
    _check_key(key)
    nonce = os.urandom(NONCE_SIZE)
    enc = Cipher(algorithms.SM4(bytes(key)), modes.GCM(nonce)).encryptor()
    if aad:
        enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return nonce + body + enc.tag


def sm4_gcm_decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """Decrypt ``nonce || ciphertext || tag`` from :func:`sm4_gcm_encrypt`.

    :raise InvalidKey: key is not 16 bytes (code ``sm4_invalid_key``).
    :raise GMError: code ``sm4_decrypt_failed`` if the blob is too short or
        any of nonce, ciphertext, tag or aad was altered; no detail is given
        on purpose.
    """
    _check_key(key)
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < NONCE_SIZE + TAG_SIZE:
        raise GMError("SM4-GCM decryption failed", code=DECRYPT_FAILED)
    blob = bytes(blob)
    nonce, body, tag = blob[:NONCE_SIZE], blob[NONCE_SIZE:-TAG_SIZE], blob[-TAG_SIZE:]
    dec = Cipher(algorithms.SM4(bytes(key)), modes.GCM(nonce, tag)).decryptor()
    if aad:
        dec.authenticate_additional_data(aad)
    try:
        return dec.update(body) + dec.finalize()
    except InvalidTag:
        raise GMError("SM4-GCM decryption failed", code=DECRYPT_FAILED) from None
