"""SM2-signed checkpoints of the audit log (C2SP signed notes, :mod:`common.crypto.signed_note`).

The log key is an SM2 key in the gateway's own key store (:mod:`common.crypto.keystore`, purpose
``audit-log``), generated on first use. The writer publishes a checkpoint when the log grew and
the newest one is older than ``AUDIT_CHECKPOINT_INTERVAL``; readers (the auditor API, exports)
get one on demand when they need a newer one, so what an auditor sees never waits for the writer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from common.crypto.gm import SM2PublicKey
from common.crypto.keystore import ACTIVE as KEY_ACTIVE
from common.crypto.keystore import KeyStore
from common.crypto.signed_note import compute_key_hint
from common.errors import NotFound
from common.merkle_log.checkpoints import CheckpointBook, LogSigner
from gateway.audit import log
from gateway.audit.models import AuditCheckpoint, SigningKey

KEY_PURPOSE = "audit-log"


class NoCheckpoint(NotFound):
    code, title = "audit_checkpoint_not_found", "No checkpoint"


# Publishing, the lazy publisher and lookups are common.merkle_log.checkpoints (shared with the
# seal node's signature log); these names are the audit log's.
BOOK = CheckpointBook(AuditCheckpoint, log.STORE, NoCheckpoint)

newest = BOOK.newest
publish = BOOK.publish
latest = BOOK.latest
for_size = BOOK.for_size
count = BOOK.count


def load_signer(session: Session, kek: bytes, origin: str) -> LogSigner:
    """The active log key, generated on first use under the head lock (so only once); the
    caller commits. Several active keys (should they exist) resolve to the oldest."""
    store = KeyStore(session, SigningKey, kek)
    active = [row for row in store.public_keys(KEY_PURPOSE) if row.status == KEY_ACTIVE]
    if not active:
        log.STORE.lock_head(session)
        row = store.active(KEY_PURPOSE, create=False) or store.generate(KEY_PURPOSE)
        active = [row]
    row = active[0]
    return LogSigner(origin=origin, key_id=row.kid, private_key=store.private_key(row.kid))


def public_keys(session: Session, kek: bytes) -> list[Any]:
    """Every log key, active and retired: old checkpoints stay verifiable after a rotation."""
    return KeyStore(session, SigningKey, kek).public_keys(KEY_PURPOSE)


def verifiers(session: Session, kek: bytes, origin: str) -> dict[str, tuple[SM2PublicKey, str]]:
    return {row.kid: (SM2PublicKey.from_pem(row.public_pem.encode()), origin) for row in public_keys(session, kek)}


def keys_document(session: Session, kek: bytes, origin: str) -> dict[str, Any]:
    keys = []
    for row in public_keys(session, kek):
        der = SM2PublicKey.from_pem(row.public_pem.encode()).to_der()
        keys.append({"key_id": row.kid, "name": origin, "key_hint": compute_key_hint(origin, der).hex(),
                     "algorithm": row.algorithm, "status": row.status, "public_key_pem": row.public_pem})
    return {"origin": origin, "keys": keys}


def as_dict(row: AuditCheckpoint) -> dict[str, Any]:
    return {"tree_size": row.tree_size, "root_hash": bytes(row.root_hash).hex(), "note": row.note,
            "key_id": row.key_id, "created_at": row.created_at}
