"""The log's SM2 key (in the seal service's key store, ``signing_keys``, purpose ``log``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from common.crypto.gm import SM2PublicKey
from common.crypto.keystore import ACTIVE as KEY_ACTIVE
from common.crypto.keystore import KeyStore
from seal.log.checkpoints import LogSigner
from seal.log.tree import serialise_first_use
from seal.models import SigningKey

LOG_KEY_PURPOSE = "log"


def key_store(session: Session, kek: bytes) -> KeyStore:
    return KeyStore(session, SigningKey, kek)


def load_signer(session: Session, kek: bytes, origin: str) -> LogSigner:
    """The active log key, generated on first use (committed by the caller).

    Two publishers arriving together at an empty key store would each generate a key, leaving
    two active log keys; the creation therefore happens under :func:`serialise_first_use`, and
    the key store is read again once the lock is held, so the second publisher uses the key the
    first one committed. Should several active keys exist anyway (a store from before this
    rule), the oldest is used, so that every worker agrees.
    """
    store = key_store(session, kek)
    rows = store.public_keys(LOG_KEY_PURPOSE)
    active = [row for row in rows if row.status == KEY_ACTIVE]
    if not active:
        serialise_first_use(session)
        row = store.active(LOG_KEY_PURPOSE, create=False)
        if row is None:
            row = store.generate(LOG_KEY_PURPOSE)
        active = [row]
    row = active[0]
    return LogSigner(origin=origin, key_id=row.kid, private_key=store.private_key(row.kid))


def public_keys(session: Session, kek: bytes) -> list[Any]:
    """Every log key, active and retired: old checkpoints stay verifiable after a rotation."""
    return key_store(session, kek).public_keys(LOG_KEY_PURPOSE)


def verifiers(session: Session, kek: bytes, origin: str) -> dict[str, tuple[SM2PublicKey, str]]:
    return {row.kid: (SM2PublicKey.from_pem(row.public_pem.encode()), origin) for row in public_keys(session, kek)}

