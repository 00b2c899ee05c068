"""The audit log: batched appends, the stored tree, proofs, search.

An RFC 9162 Merkle tree with SM3 (STANDARDS.md §5) over RFC 8785 canonical JSON leaves, built on
:mod:`common.crypto.merkle`, stored the way the seal node stores its signature log: every append
writes its leaf and the perfect-subtree nodes it completes, so a root or proof is a handful of
indexed reads. The writer appends a batch of spooled records in one transaction:
``UPDATE audit_head SET size = size + k RETURNING size`` takes the head row's lock (PostgreSQL
row lock; SQLite's write lock), assigns ``k`` consecutive indexes, and a rollback releases them
with everything else. A batch needs only the stored nodes of the old tree's "frontier" (the
perfect subtrees that ``size`` decomposes into): every left sibling a new leaf completes is
either one of those or a node made earlier in the same batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.errors import NotFound, Problem
from gateway.audit.models import HEAD_ID, AuditHead, AuditNode, AuditRecord

HASH = merkle.sm3
HASH_SIZE = 32
KINDS = ("request", "audit_query")
INDEXED_FIELDS = ("request_id", "client_id", "subject", "method", "route", "status", "outcome")
MAX_RANGE = 1000
SAFE_INTEGER = 2**53 - 1  # RFC 8785 numbers are IEEE doubles


class LogError(Problem):
    status, code, title = 400, "audit_log_error", "Audit log request rejected"


class BadRange(LogError):
    code, title = "audit_range_invalid", "Invalid audit log range"


class BadRecord(ValueError):
    """A record cannot be a leaf (no kind, no time with an offset, not JSON)."""


# -- leaves ---------------------------------------------------------------------------------


def _plain(value: Any) -> bool:
    """True when ``json.dumps`` writes ``value`` exactly as RFC 8785 does.

    That holds for ASCII object keys (code-point order = UTF-16 order), strings (both escape the
    same characters, lowercase ``\\u00xx``; lone surrogates fail to encode), safe integers, and
    non-integral floats between 1e-4 and 1e16, where Python's repr and ECMAScript's Number
    formatting both give the shortest round-trip digits without an exponent.
    """
    kind = type(value)  # exact types: a subclass may serialise differently, so it takes the slow path
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -SAFE_INTEGER <= value <= SAFE_INTEGER
    if kind is float:
        return math.isfinite(value) and not value.is_integer() and 1e-4 <= abs(value) < 1e16
    if kind is dict:
        for key, item in value.items():  # noqa: SIM110 - a plain loop: all() and a generator cost more here
            if type(key) is not str or not key.isascii() or not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110 - as above
            if not _plain(item):
                return False
        return True
    return False


def canonical_leaf(record: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of a record: the bytes the tree commits to.

    The ``rfc8785`` package is pure Python and cost ~0.6 ms per record, the writer's largest
    cost; records of plain values (all the edge writes) take the C ``json`` encoder, which gives
    the same bytes for them (tested against ``rfc8785`` on generated records), anything else the
    reference encoder. ``verify`` re-checks every stored leaf with ``rfc8785``.
    """
    record = dict(record)
    if _plain(record):
        try:
            return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                              allow_nan=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: the reference encoder says why it is refused
            pass
    return rfc8785.dumps(record)


def record_time(record: Mapping[str, Any]) -> datetime:
    """:raise BadRecord: ``time`` is not ISO 8601 with a UTC offset."""
    value = record.get("time")
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"record time {value!r} is not ISO 8601") from None
    if not isinstance(value, str) or parsed.tzinfo is None:
        raise BadRecord("record time must be an ISO 8601 string with a UTC offset")
    return parsed


def _indexed(record: Mapping[str, Any], name: str) -> Any:
    value = record.get(name)
    if name == "status":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None if value is None else str(value)[:255]


def row_values(record: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The ``audit_records`` row of ``record`` at ``index``. :raise BadRecord:"""
    if record.get("kind") not in KINDS:
        raise BadRecord(f"record kind must be one of {KINDS}")
    try:
        leaf = canonical_leaf(record)
    except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
        raise BadRecord(f"record is not canonicalisable JSON: {exc}") from None
    values = {name: _indexed(record, name) for name in INDEXED_FIELDS}
    values.update(leaf_index=index, leaf=leaf.decode(), leaf_hash=merkle.leaf_hash(leaf, hash_fn=HASH),
                  kind=record["kind"], time=record_time(record))
    return values


# -- appends --------------------------------------------------------------------------------

_HEAD = AuditHead.__table__
_INSERT_RECORDS = insert(AuditRecord.__table__)
_INSERT_NODES = insert(AuditNode.__table__)


def _advance_head(session: Session, count: int) -> int:
    """Lock the head and add ``count``; returns the new size. :raise LogError: no head row."""
    size = session.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(size=_HEAD.c.size + count)
                           .returning(_HEAD.c.size)).scalar_one_or_none()
    if size is None:
        raise LogError("the audit head row is missing (run the migrations)", code="audit_head_missing", status=500)
    return int(size)


def frontier(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``[0, size)`` decomposes into, largest first, as (level, index)."""
    keys, start = [], 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def append_records(session: Session, records: list[Mapping[str, Any]]) -> list[int]:
    """Append records in the caller's transaction; returns their leaf indexes (the caller commits).

    :raise BadRecord: a record cannot be a leaf (nothing is written: the caller rolls back).
    """
    if not records:
        return []
    size = _advance_head(session, len(records))
    start = size - len(records)
    rows = [row_values(record, start + i) for i, record in enumerate(records)]
    nodes = fetch_nodes(session, frontier(start))
    new_nodes: list[dict[str, Any]] = []
    for row in rows:
        index, h = row["leaf_index"], row["leaf_hash"]
        level, i = 0, index
        nodes[(0, i)] = h
        new_nodes.append({"level": 0, "node_index": i, "hash": h})
        while i & 1:  # leaf i completes one perfect subtree per trailing 1 bit
            h = merkle.node_hash(nodes[(level, i - 1)], h, hash_fn=HASH)
            level, i = level + 1, i >> 1
            nodes[(level, i)] = h
            new_nodes.append({"level": level, "node_index": i, "hash": h})
    connection = session.connection()
    connection.execute(_INSERT_RECORDS, rows)
    connection.execute(_INSERT_NODES, new_nodes)
    return [row["leaf_index"] for row in rows]


# -- the node store: roots and proofs -------------------------------------------------------


def fetch_nodes(session: Session, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Read the given nodes in one query. :raise LogError: a node the tree must have is missing."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    # Integers computed here (int() makes sure) are inlined: one OR of primary-key probes is
    # what both SQLite and PostgreSQL answer fastest, and bind parameters would cost more.
    terms = " OR ".join(f"(level = {int(level)} AND node_index = {int(idx)})" for level, idx in keys)
    rows = session.connection().exec_driver_sql(f"SELECT level, node_index, hash FROM audit_nodes WHERE {terms}")  # noqa: S608
    found = {(level, idx): bytes(h) for level, idx, h in rows}
    missing = [key for key in keys if key not in found]
    if missing:
        raise LogError(f"audit node {missing[0]} is missing from the store", code="audit_node_missing", status=500)
    return found


def _with_nodes(session: Session, compute: Callable[[merkle.GetNode], Any]) -> Any:
    """Run a :mod:`common.crypto.merkle` computation with its nodes read in one query (a dry
    run with placeholder hashes lists them: which nodes are touched depends on sizes only)."""
    wanted: list[tuple[int, int]] = []
    compute(lambda level, index: wanted.append((level, index)) or bytes(HASH_SIZE))
    nodes = fetch_nodes(session, wanted)
    return compute(lambda level, index: nodes[(level, index)])


def log_size(session: Session) -> int:
    return int(session.execute(select(_HEAD.c.size).where(_HEAD.c.id == HEAD_ID)).scalar() or 0)


def pruned_below(session: Session) -> int:
    return int(session.execute(select(_HEAD.c.pruned_below).where(_HEAD.c.id == HEAD_ID)).scalar() or 0)


def _check_size(session: Session, size: int) -> None:
    current = log_size(session)
    if not 0 <= size <= current:
        raise BadRange(f"tree size {size} is outside the log (size {current})")


def root_hash(session: Session, size: int) -> bytes:
    _check_size(session, size)
    return _with_nodes(session, lambda get: merkle.subtree_root(0, size, get, hash_fn=HASH))


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    _check_size(session, size)
    if not 0 <= index < size:
        raise BadRange(f"leaf index {index} is outside a tree of size {size}")
    return _with_nodes(session, lambda get: merkle.inclusion_proof(index, size, get, hash_fn=HASH))


def consistency_proof(session: Session, size1: int, size2: int) -> list[bytes]:
    _check_size(session, size2)
    if not 0 <= size1 <= size2:
        raise BadRange(f"no consistency proof from size {size1} to size {size2}")
    return _with_nodes(session, lambda get: merkle.consistency_proof(size1, size2, get, hash_fn=HASH))


# -- records and search ---------------------------------------------------------------------


def get_record(session: Session, index: int) -> AuditRecord:
    """:raise NotFound: no record at that index (never appended, or pruned after archiving)."""
    row = session.get(AuditRecord, index)
    if row is None or index >= log_size(session):
        raise NotFound(f"no audit record at index {index}", code="audit_record_not_found")
    return row


def records_range(session: Session, start: int, end: int) -> list[AuditRecord]:
    """Records ``[start, end)`` (at most :data:`MAX_RANGE`). :raise BadRange:"""
    size = log_size(session)
    if not 0 <= start < end <= size:
        raise BadRange(f"range [{start}, {end}) is not within the log [0, {size}) or is empty")
    if end - start > MAX_RANGE:
        raise BadRange(f"at most {MAX_RANGE} records per request")
    return list(session.scalars(select(AuditRecord).where(AuditRecord.leaf_index >= start,
                                                          AuditRecord.leaf_index < end)
                                .order_by(AuditRecord.leaf_index)))


@dataclass
class SearchQuery:
    since: datetime | None = None
    until: datetime | None = None
    client_id: str | None = None
    subject: str | None = None
    route: str | None = None
    status: int | None = None
    request_id: str | None = None
    kind: str | None = None


def search(session: Session, query: SearchQuery, *, page: int = 1, per_page: int = 50) -> tuple[list[AuditRecord], int]:
    """Records matching every given criterion, newest first, and how many match.

    The search reads the copied columns, an index over the log: each returned record's
    inclusion proof against a signed checkpoint is what proves it.
    """
    conditions = [AuditRecord.leaf_index < log_size(session)]
    for name in ("client_id", "subject", "route", "status", "request_id", "kind"):
        value = getattr(query, name)
        if value is not None and value != "":
            conditions.append(getattr(AuditRecord, name) == value)
    if query.since:
        conditions.append(AuditRecord.time >= query.since)
    if query.until:
        conditions.append(AuditRecord.time < query.until)
    total = session.scalar(select(func.count()).select_from(AuditRecord).where(*conditions)) or 0
    rows = session.scalars(select(AuditRecord).where(*conditions).order_by(AuditRecord.leaf_index.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)
