"""The stored tree: the head row (the log's committed size, and its lock) and the node table.

Every append stores the leaf and the perfect-subtree nodes it completes (the layout of
``common.crypto.merkle.MemoryTree``), so a root or proof is a handful of indexed reads, never a
rebuild.

Ordering under concurrency: an append starts with ``UPDATE log_head SET size = size + n ...
RETURNING size``. On PostgreSQL that takes the row lock of the single head row, so concurrent
appends queue on it until the holder commits (READ COMMITTED re-reads the committed size after
the wait); on SQLite the first write of a transaction takes the database write lock, which
serialises writers the same way (busy_timeout turns contention into waiting). Either way the
indexes are assigned and the leaves stored in the caller's transaction: a rollback releases
them with everything else, so there are no gaps, and the primary key on the leaf index makes a
duplicate impossible even if that reasoning were wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from common.crypto import merkle
from seal.log.errors import BadRange, LogError, head_missing
from seal.log.models import HEAD_ID, LogHead

HASH = merkle.sm3
HASH_SIZE = 32

_HEAD = LogHead.__table__
# Prepared once: executing a built Core statement with parameters skips SQLAlchemy's per-call
# statement construction, which cost more than the statements themselves.
_ADVANCE_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(size=_HEAD.c.size + bindparam("count"))
                 .returning(_HEAD.c.size))
_LOCK_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(size=_HEAD.c.size).returning(_HEAD.c.size)
_SIZE = select(_HEAD.c.size).where(_HEAD.c.id == HEAD_ID)


def advance_head(session: Session, count: int) -> int:
    """Reserve ``count`` leaf indexes in the caller's transaction; returns the first one.

    Takes the head's row lock (held until the caller commits or rolls back).
    """
    size = session.connection().execute(_ADVANCE_HEAD, {"count": count}).scalar_one_or_none()
    if size is None:
        raise head_missing()
    return int(size) - count


def lock_head(session: Session) -> int:
    """Serialise with appends and other publishers; returns the committed log size.

    A no-op UPDATE of the head row is the portable ``SELECT ... FOR UPDATE``: a row lock on
    PostgreSQL, the database write lock on SQLite.
    """
    size = session.execute(_LOCK_HEAD).scalar_one_or_none()
    if size is None:
        raise head_missing()
    return int(size)


def serialise_first_use(session: Session) -> None:
    """Take the log head's lock in the caller's transaction (held until it commits or rolls back).

    For one-time creations that must not happen twice when two workers get there at the same
    instant (the first log key, the first maker certificate): check, take this lock, check
    again, create. The head row is the one row every such writer can lock by a fixed key.
    """
    lock_head(session)


def log_size(session: Session) -> int:
    size = session.execute(_SIZE).scalar()
    return int(size or 0)


def check_size(session: Session, size: int) -> None:
    """:raise BadRange: ``size`` is not a tree size of the log."""
    current = log_size(session)
    if not 0 <= size <= current:
        raise BadRange(f"tree size {size} is outside the log (size {current})")


def fetch_nodes(session: Session, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Read the given nodes in one query: an OR of primary-key lookups.

    Written as plain SQL because building ~40 SQLAlchemy expressions per proof cost more than
    the query; both SQLite (OR-by-union optimisation) and PostgreSQL (BitmapOr) answer it with one
    index probe per node, where a row-value IN made SQLite scan the table.
    :raise LogError: a node the tree must have is missing from the store.
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    # The values are integers computed here (int() makes sure), so they are inlined: bind
    # parameters for ~40 values cost more to process than the query takes to run.
    terms = " OR ".join(f"(level = {int(level)} AND node_index = {int(idx)})" for level, idx in keys)
    rows = session.connection().exec_driver_sql(f"SELECT level, node_index, hash FROM log_nodes WHERE {terms}")  # noqa: S608
    found = {(level, idx): bytes(h) for level, idx, h in rows}
    missing = [key for key in keys if key not in found]
    if missing:
        raise LogError(f"log node {missing[0]} is missing from the store", code="log_node_missing", status=500)
    return found


def _completed(index: int) -> int:
    """How many perfect subtrees leaf ``index`` completes: its number of trailing 1 bits."""
    return (~index & (index + 1)).bit_length() - 1


def new_nodes(session: Session, first: int, leaf_hashes: list[bytes]) -> list[dict[str, Any]]:
    """Rows for leaves ``first, first + 1, ...`` and every perfect subtree they complete.

    Node ``(level, k)`` is completed by leaf ``(k + 1) * 2**level - 1``: a left sibling whose
    last leaf comes before ``first`` is in the store (read in one query), any other one was
    computed earlier in this same batch.
    """
    wanted = []
    for offset in range(len(leaf_hashes)):
        index = first + offset
        for level in range(_completed(index)):
            sibling = (index >> level) - 1
            if ((sibling + 1) << level) - 1 < first:
                wanted.append((level, sibling))
    nodes = fetch_nodes(session, wanted)
    rows = []
    for offset, leaf_hash in enumerate(leaf_hashes):
        index = first + offset
        rows.append({"level": 0, "node_index": index, "hash": leaf_hash})
        nodes[(0, index)] = h = leaf_hash
        for level in range(_completed(index)):
            h = merkle.node_hash(nodes[(level, (index >> level) - 1)], h, hash_fn=HASH)
            key = (level + 1, index >> (level + 1))
            nodes[key] = h
            rows.append({"level": key[0], "node_index": key[1], "hash": h})
    return rows


def with_prefetched_nodes(session: Session, compute: Callable[[merkle.GetNode], Any]) -> Any:
    """Run a ``common.crypto.merkle`` computation with its nodes read in one query.

    Which nodes a root or proof touches depends only on the sizes, not on hash values, so a dry
    run with placeholder hashes lists them; the real run then reads from that one fetch.
    """
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return bytes(HASH_SIZE)

    compute(record)
    nodes = fetch_nodes(session, wanted)
    return compute(lambda level, index: nodes[(level, index)])
