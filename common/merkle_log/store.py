"""The stored tree: a head row (the log's committed size, and its lock) and a node table.

Every append stores the leaf and the perfect-subtree nodes it completes (the layout of
``common.crypto.merkle.MemoryTree``), so a root or proof is a handful of indexed reads, never a
rebuild.

Ordering under concurrency: an append starts with ``UPDATE <head> SET size = size + n ...
RETURNING size``. On PostgreSQL that takes the row lock of the single head row, so concurrent
appends queue on it until the holder commits (READ COMMITTED re-reads the committed size after
the wait); on SQLite the first write of a transaction takes the database write lock, which
serialises writers the same way (busy_timeout turns contention into waiting). Either way the
indexes are assigned and the leaves stored in the caller's transaction: a rollback releases
them with everything else, so there are no gaps, and the primary key on the leaf index makes a
duplicate impossible even if that reasoning were wrong.

A service builds one :class:`MerkleNodeStore` over its own tables and problem types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.db_driver import driver_connection, driver_errors
from common.merkle_log.driver import DriverStatement, plain_rows
from common.merkle_log.tables import HEAD_ID

HASH = merkle.sm3
HASH_SIZE = 32


@dataclass(frozen=True)
class StoreProblems:
    """How a service reports the store's failures (its own problem types and codes)."""

    bad_range: Callable[[str], Exception]
    head_missing: Callable[[], Exception]
    node_missing: Callable[[tuple[int, int]], Exception]
    # Appended to the message of a refused consistency proof (services word it differently).
    consistency_hint: str = ""


def completed_subtrees(index: int) -> int:
    """How many perfect subtrees leaf ``index`` completes: its number of trailing 1 bits."""
    return (~index & (index + 1)).bit_length() - 1


def _stored_siblings(first: int, count: int) -> list[tuple[int, int]]:
    """The stored nodes that appending ``count`` leaves at ``first`` hashes with: left siblings
    whose last leaf comes before ``first`` (node ``(level, k)`` is completed by leaf
    ``(k + 1) * 2**level - 1``); the others are computed in the same append."""
    wanted = []
    for index in range(first, first + count):
        for level in range(completed_subtrees(index)):
            sibling = (index >> level) - 1
            if ((sibling + 1) << level) - 1 < first:
                wanted.append((level, sibling))
    return wanted


class MerkleNodeStore:
    """Roots, proofs and appends of a Merkle tree stored in ``head`` and the ``nodes_table`` table."""

    def __init__(self, head: Table, nodes_table: str, problems: StoreProblems) -> None:
        self.nodes_table = nodes_table
        self.problems = problems
        # Prepared once: executing a built Core statement with parameters skips SQLAlchemy's
        # per-call statement construction, which cost more than the statements themselves.
        # Run on the driver connection on PostgreSQL (every append pays it: common.merkle_log.driver).
        self._advance = DriverStatement(update(head).where(head.c.id == HEAD_ID)
                                        .values(size=head.c.size + bindparam("count")).returning(head.c.size))
        self._lock = update(head).where(head.c.id == HEAD_ID).values(size=head.c.size).returning(head.c.size)
        self._size = select(head.c.size).where(head.c.id == HEAD_ID)
        # The stored nodes appending ``count`` leaves at ``first = size - count`` hashes with
        # (``_stored_siblings``, computed from the head as this transaction sees it after its own
        # advance, so on PostgreSQL it can go with the advance): the roots of the perfect subtrees
        # making up the tree of ``first`` leaves, node (b, (first >> b) - 1) for a set bit b of
        # ``first``, whose right sibling (b, first >> b) the new leaves complete, that is
        # ((first >> b) + 1) << b <= size. A primary-key probe per node.
        self._edge_sql = (f"SELECT n.level, n.node_index, n.hash FROM {head.name} h"  # noqa: S608 - table names
                          " CROSS JOIN generate_series(0, 62) AS b(level)"
                          f" JOIN {nodes_table} n ON n.level = b.level"
                          " AND n.node_index = ((h.size - %(count)s) >> b.level) - 1"
                          f" WHERE h.id = {HEAD_ID} AND ((h.size - %(count)s) >> b.level) & 1 = 1"
                          " AND (((h.size - %(count)s) >> b.level) + 1) << b.level <= h.size")

    # -- the head ---------------------------------------------------------------------------

    def advance_head(self, session: Session, count: int) -> int:
        """Reserve ``count`` leaf indexes in the caller's transaction; returns the first one.

        Takes the head's row lock (held until the caller commits or rolls back).
        """
        row = self._advance.first(session, {"count": count})
        if row is None:
            raise self.problems.head_missing()
        return int(row[0]) - count

    def append_nodes(self, session: Session, leaf_hashes: list[bytes]) -> tuple[int, list[dict[str, Any]]]:
        """Reserve ``len(leaf_hashes)`` leaf indexes (:meth:`advance_head`, taking the head's row
        lock) and build the node rows of those leaves (:meth:`new_nodes`): the first index, the rows.

        On PostgreSQL the head's advance and the read of the stored nodes the new ones hang from
        go out together, one round trip (inside :func:`common.merkle_log.driver.pipelined`) where
        the advance and then the read took two, both under the lock. The read is its own statement
        after the advance: under READ COMMITTED its snapshot is taken once the lock is held, so it
        sees every node the previous holder committed (a join inside the ``UPDATE`` would read
        with the snapshot from before the wait). Elsewhere: :meth:`advance_head`, :meth:`new_nodes`.
        """
        count = len(leaf_hashes)
        connection = driver_connection(session)
        if connection is None:
            first = self.advance_head(session, count)
            return first, self.new_nodes(session, first, leaf_hashes)
        params = {"count": count}
        with driver_errors(self._edge_sql, params), connection.cursor() as advance, \
                connection.cursor() as edge:
            advance.execute(self._advance.sql, self._advance.bound_params(params))
            edge.execute(self._edge_sql, params)
            row = advance.fetchone()
            stored = {(level, idx): bytes(h) for level, idx, h in edge.fetchall()}
        if row is None:
            raise self.problems.head_missing()
        first = int(row[0]) - count
        return first, self._node_rows(first, leaf_hashes, stored)

    def lock_head(self, session: Session) -> int:
        """Serialise with appends and other publishers; returns the committed log size.

        A no-op UPDATE of the head row is the portable ``SELECT ... FOR UPDATE``: a row lock on
        PostgreSQL, the database write lock on SQLite.
        """
        size = session.execute(self._lock).scalar_one_or_none()
        if size is None:
            raise self.problems.head_missing()
        return int(size)

    def log_size(self, session: Session) -> int:
        return int(session.execute(self._size).scalar() or 0)

    def check_size(self, session: Session, size: int) -> None:
        """:raise: the service's bad-range problem when ``size`` is not a tree size of the log."""
        current = self.log_size(session)
        if not 0 <= size <= current:
            raise self.problems.bad_range(f"tree size {size} is outside the log (size {current})")

    # -- nodes ------------------------------------------------------------------------------

    def fetch_nodes(self, session: Session, keys: Iterable[tuple[int, int]], *,
                    on_driver: bool = False) -> dict[tuple[int, int], bytes]:
        """Read the given nodes in one query: an OR of primary-key lookups (``on_driver``: on
        PostgreSQL on the driver connection, as the rest of an append, ``common.merkle_log.driver``).

        Written as plain SQL because building ~40 SQLAlchemy expressions per proof cost more than
        the query; both SQLite (OR-by-union optimisation) and PostgreSQL (BitmapOr) answer it with
        one index probe per node, where a row-value IN made SQLite scan the table.
        :raise: the service's node-missing problem when a node the tree must have is not stored.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        # The values are integers computed here (int() makes sure), so they are inlined: bind
        # parameters for ~40 values cost more to process than the query takes to run.
        terms = " OR ".join(f"(level = {int(level)} AND node_index = {int(idx)})" for level, idx in keys)
        sql = f"SELECT level, node_index, hash FROM {self.nodes_table} WHERE {terms}"  # noqa: S608
        rows = plain_rows(session, sql) if on_driver else session.connection().exec_driver_sql(sql)
        found = {(level, idx): bytes(h) for level, idx, h in rows}
        missing = [key for key in keys if key not in found]
        if missing:
            raise self.problems.node_missing(missing[0])
        return found

    def new_nodes(self, session: Session, first: int, leaf_hashes: list[bytes]) -> list[dict[str, Any]]:
        """Rows for leaves ``first, first + 1, ...`` and every perfect subtree they complete.

        Node ``(level, k)`` is completed by leaf ``(k + 1) * 2**level - 1``: a left sibling whose
        last leaf comes before ``first`` is in the store (read in one query), any other one was
        computed earlier in this same batch.
        """
        return self._node_rows(first, leaf_hashes,
                               self.fetch_nodes(session, _stored_siblings(first, len(leaf_hashes)), on_driver=True))

    def _node_rows(self, first: int, leaf_hashes: list[bytes],
                   stored: dict[tuple[int, int], bytes]) -> list[dict[str, Any]]:
        """The rows of :meth:`new_nodes`, given (at least) the stored siblings they need.

        :raise: the service's node-missing problem when one of those is not in ``stored``.
        """
        for key in _stored_siblings(first, len(leaf_hashes)):
            if key not in stored:
                raise self.problems.node_missing(key)
        nodes = dict(stored)
        rows = []
        for offset, leaf_hash in enumerate(leaf_hashes):
            index = first + offset
            rows.append({"level": 0, "node_index": index, "hash": leaf_hash})
            nodes[(0, index)] = h = leaf_hash
            for level in range(completed_subtrees(index)):
                h = merkle.node_hash(nodes[(level, (index >> level) - 1)], h, hash_fn=HASH)
                key = (level + 1, index >> (level + 1))
                nodes[key] = h
                rows.append({"level": key[0], "node_index": key[1], "hash": h})
        return rows

    def with_prefetched_nodes(self, session: Session, compute: Callable[[merkle.GetNode], Any]) -> Any:
        """Run a ``common.crypto.merkle`` computation with its nodes read in one query.

        Which nodes a root or proof touches depends only on the sizes, not on hash values, so a
        dry run with placeholder hashes lists them; the real run then reads from that one fetch.
        """
        wanted: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            wanted.append((level, index))
            return bytes(HASH_SIZE)

        compute(record)
        nodes = self.fetch_nodes(session, wanted)
        return compute(lambda level, index: nodes[(level, index)])

    # -- roots and proofs (RFC 9162 §2.1) ---------------------------------------------------

    def root_hash(self, session: Session, size: int) -> bytes:
        """MTH of the first ``size`` leaves. :raise: bad range beyond the log."""
        self.check_size(session, size)
        return self.with_prefetched_nodes(session, lambda get: merkle.subtree_root(0, size, get, hash_fn=HASH))

    def inclusion_proof(self, session: Session, index: int, size: int) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size``. :raise: bad range when out of bounds."""
        self.check_size(session, size)
        if not 0 <= index < size:
            raise self.problems.bad_range(f"leaf index {index} is outside a tree of size {size}")
        return self.with_prefetched_nodes(session,
                                          lambda get: merkle.inclusion_proof(index, size, get, hash_fn=HASH))

    def consistency_proof(self, session: Session, size1: int, size2: int) -> list[bytes]:
        """Proof that the tree of ``size2`` extends the tree of ``size1``. :raise: bad range for bad sizes."""
        self.check_size(session, size2)
        if not 0 <= size1 <= size2:
            raise self.problems.bad_range(f"no consistency proof from size {size1} to size {size2}"
                                          f"{self.problems.consistency_hint}")
        return self.with_prefetched_nodes(session,
                                          lambda get: merkle.consistency_proof(size1, size2, get, hash_fn=HASH))
