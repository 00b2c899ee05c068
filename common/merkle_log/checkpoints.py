"""Checkpoints of a stored Merkle log: signed tree heads in the C2SP signed-note form (SM2).

Published eagerly by a service's background task when the log grew, and lazily by
:meth:`CheckpointBook.latest` when a reader needs a newer one, so what an auditor sees never
depends on the background worker keeping up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.crypto.gm import SM2PrivateKey
from common.crypto.signed_note import Checkpoint, sign_note
from common.db import utcnow
from common.merkle_log.store import MerkleNodeStore


@dataclass
class LogSigner:
    """The log's SM2 key seen as a signed-note signer; ``origin`` doubles as the key name."""

    origin: str
    key_id: str
    private_key: SM2PrivateKey

    @property
    def public_der(self) -> bytes:
        return self.private_key.public_key().to_der()


class CheckpointBook:
    """The checkpoint table ``model`` (a :class:`~common.merkle_log.tables.CheckpointMixin`) of ``store``'s log.

    ``not_found(message)`` builds the service's problem for a size with no checkpoint.
    """

    def __init__(self, model: Any, store: MerkleNodeStore, not_found: Callable[[str], Exception]) -> None:
        self.model = model
        self.store = store
        self.not_found = not_found

    def newest(self, session: Session) -> Any | None:
        return session.scalars(select(self.model).order_by(self.model.tree_size.desc()).limit(1)).first()

    def publish(self, session: Session, signer: LogSigner) -> Any:
        """Sign and store a checkpoint of the current log, unless one of this size exists; commits.

        Idempotent: when the log did not grow the stored checkpoint is returned unchanged.
        """
        size = self.store.lock_head(session)
        newest = self.newest(session)
        if newest is not None and newest.tree_size >= size:
            session.commit()  # release the lock
            return newest
        root = self.store.root_hash(session, size)
        note = sign_note(Checkpoint(signer.origin, size, root).body(), signer.origin, signer.private_key,
                         signer.public_der)
        row = self.model(tree_size=size, root_hash=root, note=note, key_id=signer.key_id, created_at=utcnow())
        session.add(row)
        session.commit()
        return row

    def latest(self, session: Session, get_signer: Callable[[], LogSigner], *, max_age: float,
               covering: int | None = None) -> Any:
        """The newest checkpoint, re-published when stale and the log grew (the lazy publisher).

        ``covering``: a leaf index the checkpoint must include; publishes at once when needed.
        ``get_signer`` is only called (the key only decrypted) when a checkpoint is signed.
        """
        newest = self.newest(session)
        size = self.store.log_size(session)
        stale = newest is None or (newest.tree_size < size and
                                   utcnow() - newest.created_at >= timedelta(seconds=max_age))
        uncovered = covering is not None and (newest is None or newest.tree_size <= covering)
        if stale or uncovered:
            newest = self.publish(session, get_signer())
        return newest

    def for_size(self, session: Session, size: int) -> Any:
        """:raise: the service's not-found problem when none was published at that size."""
        row = session.scalars(select(self.model).where(self.model.tree_size == size)).first()
        if row is None:
            raise self.not_found(f"no checkpoint was published at tree size {size}")
        return row

    def count(self, session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(self.model)) or 0)

    def page(self, session: Session, *, page: int, per_page: int) -> tuple[list[Any], int]:
        """Newest first, and how many there are."""
        rows = session.scalars(select(self.model).order_by(self.model.tree_size.desc())
                               .offset((page - 1) * per_page).limit(per_page))
        return list(rows), self.count(session)
