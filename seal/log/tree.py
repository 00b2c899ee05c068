"""The stored tree of the signature log: ``log_head`` and ``log_nodes`` as a shared node store.

The storage, locking and proof code is :mod:`common.merkle_log.store` (shared with the
gateway's audit log, which describes the concurrency design); this module binds it to the seal
log's tables and problem codes and keeps the module-level names the rest of the service uses.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.merkle_log.store import HASH, HASH_SIZE, MerkleNodeStore, StoreProblems
from seal.log.errors import BadRange, LogError, head_missing
from seal.log.models import LogHead

__all__ = ["HASH", "HASH_SIZE", "STORE", "advance_head", "append_nodes", "lock_head", "log_size", "new_nodes",
           "serialise_first_use"]


def _node_missing(key: tuple[int, int]) -> LogError:
    return LogError(f"log node {key} is missing from the store", code="log_node_missing", status=500)


STORE = MerkleNodeStore(LogHead.__table__, "log_nodes",
                        StoreProblems(bad_range=BadRange, head_missing=head_missing, node_missing=_node_missing,
                                      consistency_hint=": need 0 <= first <= second"))

advance_head = STORE.advance_head
append_nodes = STORE.append_nodes
lock_head = STORE.lock_head
log_size = STORE.log_size
new_nodes = STORE.new_nodes


def serialise_first_use(session: Session) -> None:
    """Take the log head's lock in the caller's transaction (held until it commits or rolls back).

    For one-time creations that must not happen twice when two workers get there at the same
    instant (the first log key, the first maker certificate): check, take this lock, check
    again, create. The head row is the one row every such writer can lock by a fixed key.
    """
    lock_head(session)
