"""Checkpoints: signed tree heads in the C2SP signed-note form, signed with the log's SM2 key.

Checkpoints are published in two ways. The beat-scheduled task ``seal.tasks.publish_checkpoint``
signs one every ``SEAL_LOG_CHECKPOINT_INTERVAL`` seconds when the log grew, so the log is
committed to within seconds of every append whether or not anyone reads it. Readers are served
by :func:`latest_checkpoint`, which re-signs when the newest checkpoint is stale and the log grew,
or when a proof needs a checkpoint covering a newer entry: what an auditor sees never depends on
the worker keeping up. ``xsn seal log checkpoint`` publishes one on demand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.crypto.gm import SM2PrivateKey, SM2PublicKey
from common.crypto.signed_note import Checkpoint, compute_key_hint, sign_note
from common.db import utcnow
from seal.log.errors import NoCheckpoint
from seal.log.models import LogCheckpoint
from seal.log.proofs import root_hash
from seal.log.tree import lock_head, log_size


@dataclass
class LogSigner:
    """The log's SM2 key seen as a signed-note signer; ``origin`` doubles as the key name."""

    origin: str
    key_id: str
    private_key: SM2PrivateKey

    @property
    def public_der(self) -> bytes:
        return self.private_key.public_key().to_der()


def newest_checkpoint(session: Session) -> LogCheckpoint | None:
    return session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)).first()


def publish_checkpoint(session: Session, signer: LogSigner) -> LogCheckpoint:
    """Sign and store a checkpoint of the current log, unless one of this size exists; commits.

    Idempotent: when the log did not grow the stored checkpoint is returned unchanged.
    """
    size = lock_head(session)
    newest = newest_checkpoint(session)
    if newest is not None and newest.tree_size >= size:
        session.commit()  # release the lock
        return newest
    root = root_hash(session, size)
    note = sign_note(Checkpoint(signer.origin, size, root).body(), signer.origin, signer.private_key,
                     signer.public_der)
    row = LogCheckpoint(tree_size=size, root_hash=root, note=note, key_id=signer.key_id, created_at=utcnow())
    session.add(row)
    session.commit()
    return row


def latest_checkpoint(session: Session, get_signer: Callable[[], LogSigner], *, max_age: float,
                      covering: int | None = None) -> LogCheckpoint:
    """The newest checkpoint, re-published when stale and the log grew (the lazy publisher).

    ``covering``: a leaf index the checkpoint must include; publishes at once when needed.
    ``get_signer`` is only called (the key only decrypted) when a checkpoint is signed.
    """
    newest = newest_checkpoint(session)
    size = log_size(session)
    stale = newest is None or (newest.tree_size < size and
                               utcnow() - newest.created_at >= timedelta(seconds=max_age))
    uncovered = covering is not None and (newest is None or newest.tree_size <= covering)
    if stale or uncovered:
        newest = publish_checkpoint(session, get_signer())
    return newest


def checkpoint_for_size(session: Session, size: int) -> LogCheckpoint:
    row = session.scalars(select(LogCheckpoint).where(LogCheckpoint.tree_size == size)).first()
    if row is None:
        raise NoCheckpoint(f"no checkpoint was published at tree size {size}")
    return row


def list_checkpoints(session: Session, *, page: int, per_page: int) -> tuple[list[LogCheckpoint], int]:
    total = session.scalar(select(func.count()).select_from(LogCheckpoint)) or 0
    rows = session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)


def key_hint(origin: str, public: SM2PublicKey) -> bytes:
    return compute_key_hint(origin, public.to_der())
