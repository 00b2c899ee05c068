"""Checkpoints: signed tree heads in the C2SP signed-note form, signed with the log's SM2 key.

Checkpoints are published in two ways. The beat-scheduled task ``seal.tasks.publish_checkpoint``
signs one every ``SEAL_LOG_CHECKPOINT_INTERVAL`` seconds when the log grew, so the log is
committed to within seconds of every append whether or not anyone reads it. Readers are served
by :func:`latest_checkpoint`, which re-signs when the newest checkpoint is stale and the log grew,
or when a proof needs a checkpoint covering a newer entry: what an auditor sees never depends on
the worker keeping up. ``xsn seal log checkpoint`` publishes one on demand.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.crypto.gm import SM2PublicKey
from common.crypto.signed_note import compute_key_hint
from common.merkle_log.checkpoints import CheckpointBook, LogSigner
from seal.log.errors import NoCheckpoint
from seal.log.models import LogCheckpoint
from seal.log.tree import STORE

__all__ = ["BOOK", "LogSigner", "checkpoint_for_size", "key_hint", "latest_checkpoint", "list_checkpoints",
           "newest_checkpoint", "publish_checkpoint"]

# Publishing, the lazy publisher and lookups are common.merkle_log.checkpoints (shared with the
# gateway's audit log); these names are the seal service's.
BOOK = CheckpointBook(LogCheckpoint, STORE, NoCheckpoint)

newest_checkpoint = BOOK.newest
publish_checkpoint = BOOK.publish
latest_checkpoint = BOOK.latest
checkpoint_for_size = BOOK.for_size


def list_checkpoints(session: Session, *, page: int, per_page: int) -> tuple[list[LogCheckpoint], int]:
    return BOOK.page(session, page=page, per_page=per_page)


def key_hint(origin: str, public: SM2PublicKey) -> bytes:
    return compute_key_hint(origin, public.to_der())
