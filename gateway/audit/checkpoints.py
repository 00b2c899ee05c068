"""SM2-signed checkpoints of the audit log (C2SP signed notes, :mod:`common.crypto.signed_note`).

The log key is an SM2 key in the gateway's own key store (:mod:`common.crypto.keystore`, purpose
``audit-log``), generated on first use. The writer publishes a checkpoint when the log grew and
the newest one is older than ``AUDIT_CHECKPOINT_INTERVAL``; readers (the auditor API, exports)
get one on demand when they need a newer one, so what an auditor sees never waits for the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.crypto.gm import SM2PrivateKey, SM2PublicKey
from common.crypto.keystore import ACTIVE as KEY_ACTIVE
from common.crypto.keystore import KeyStore
from common.crypto.signed_note import Checkpoint, compute_key_hint, sign_note
from common.db import utcnow
from common.errors import NotFound
from gateway.audit import log
from gateway.audit.models import HEAD_ID, AuditCheckpoint, AuditHead, SigningKey

KEY_PURPOSE = "audit-log"


class NoCheckpoint(NotFound):
    code, title = "audit_checkpoint_not_found", "No checkpoint"


@dataclass
class LogSigner:
    """The log's SM2 key as a signed-note signer; ``origin`` doubles as the key name."""

    origin: str
    key_id: str
    private_key: SM2PrivateKey

    @property
    def public_der(self) -> bytes:
        return self.private_key.public_key().to_der()


def _lock_head(session: Session) -> int:
    """A no-op UPDATE of the head row: the portable ``SELECT ... FOR UPDATE``; returns the size."""
    head = AuditHead.__table__
    size = session.execute(update(head).where(head.c.id == HEAD_ID).values(size=head.c.size)
                           .returning(head.c.size)).scalar_one_or_none()
    if size is None:
        raise log.LogError("the audit head row is missing (run the migrations)", code="audit_head_missing",
                           status=500)
    return int(size)


def load_signer(session: Session, kek: bytes, origin: str) -> LogSigner:
    """The active log key, generated on first use under the head lock (so only once); the
    caller commits. Several active keys (should they exist) resolve to the oldest."""
    store = KeyStore(session, SigningKey, kek)
    active = [row for row in store.public_keys(KEY_PURPOSE) if row.status == KEY_ACTIVE]
    if not active:
        _lock_head(session)
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


def newest(session: Session) -> AuditCheckpoint | None:
    return session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)).first()


def publish(session: Session, signer: LogSigner) -> AuditCheckpoint:
    """Sign and store a checkpoint of the current log unless one of this size exists; commits."""
    size = _lock_head(session)
    latest = newest(session)
    if latest is not None and latest.tree_size >= size:
        session.commit()  # release the lock
        return latest
    root = log.root_hash(session, size)
    note = sign_note(Checkpoint(signer.origin, size, root).body(), signer.origin, signer.private_key,
                     signer.public_der)
    row = AuditCheckpoint(tree_size=size, root_hash=root, note=note, key_id=signer.key_id, created_at=utcnow())
    session.add(row)
    session.commit()
    return row


def latest(session: Session, get_signer: Callable[[], LogSigner], *, max_age: float,
           covering: int | None = None) -> AuditCheckpoint:
    """The newest checkpoint, re-published when stale and the log grew, or when it does not
    cover leaf ``covering``. ``get_signer`` (which decrypts the key) is called only to sign."""
    row = newest(session)
    size = log.log_size(session)
    stale = row is None or (row.tree_size < size and utcnow() - row.created_at >= timedelta(seconds=max_age))
    uncovered = covering is not None and (row is None or row.tree_size <= covering)
    if stale or uncovered:
        row = publish(session, get_signer())
    return row


def for_size(session: Session, size: int) -> AuditCheckpoint:
    """:raise NoCheckpoint: none was published at that size."""
    row = session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.tree_size == size)).first()
    if row is None:
        raise NoCheckpoint(f"no checkpoint was published at tree size {size}")
    return row


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0)


def as_dict(row: AuditCheckpoint) -> dict[str, Any]:
    return {"tree_size": row.tree_size, "root_hash": bytes(row.root_hash).hex(), "note": row.note,
            "key_id": row.key_id, "created_at": row.created_at}
