"""The audit log: batched appends, the stored tree, proofs, search.

An RFC 9162 Merkle tree with SM3 (STANDARDS.md §5) over RFC 8785 canonical JSON leaves, built on
:mod:`common.crypto.merkle`, stored the way the seal node stores its signature log: every append
writes its leaf and the perfect-subtree nodes it completes, so a root or proof is a handful of
indexed reads. The writer appends a batch of spooled records in one transaction:
``UPDATE audit_head SET size = size + k RETURNING size`` takes the head row's lock (PostgreSQL
row lock; SQLite's write lock), assigns ``k`` consecutive indexes, and a rollback releases them
with everything else. A batch needs only the stored nodes of the old tree's "frontier" (the
perfect subtrees that ``size`` decomposes into): every left sibling a new leaf completes is
either one of those or a node made earlier in the same batch. The node store (head, nodes,
roots, proofs) is :mod:`common.merkle_log.store`, shared with the seal node's signature log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import rfc8785
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.errors import NotFound, Problem
from common.merkle_log.driver import RowsInsert, pipelined
from common.merkle_log.store import HASH, MerkleNodeStore, StoreProblems
from gateway.audit.models import HEAD_ID, AuditHead, AuditNode, AuditRecord

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


def _head_missing() -> LogError:
    return LogError("the audit head row is missing (run the migrations)", code="audit_head_missing", status=500)


def _node_missing(key: tuple[int, int]) -> LogError:
    return LogError(f"audit node {key} is missing from the store", code="audit_node_missing", status=500)


_HEAD = AuditHead.__table__
STORE = MerkleNodeStore(_HEAD, "audit_nodes",
                        StoreProblems(bad_range=BadRange, head_missing=_head_missing, node_missing=_node_missing))


# -- leaves ---------------------------------------------------------------------------------


def _plain(value: Any) -> bool:
    """True when ``orjson`` (``OPT_SORT_KEYS``) writes ``value`` exactly as RFC 8785 does.

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
        # Every key a str (``join`` refuses anything else) and ASCII, in two C calls rather than
        # two checks per key (a record has 17 keys; this was the writer's largest Python cost).
        try:
            if not "".join(value).isascii():
                return False
        except TypeError:
            return False
        for item in value.values():
            # Strings, None and integers (all of a record but one float) are decided here: a
            # call per value was most of the writer's time for the edge's flat records.
            item_kind = type(item)
            if item_kind is str or item is None:
                continue
            if item_kind is int:
                if not -SAFE_INTEGER <= item <= SAFE_INTEGER:
                    return False
            elif not _plain(item):
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
    cost; records of plain values (all the edge writes) take ``orjson``, which gives the same
    bytes for them (tested against ``rfc8785`` on generated records), anything else the
    reference encoder. ``verify`` re-checks every stored leaf with ``rfc8785``.
    """
    record = record if type(record) is dict else dict(record)
    if _plain(record):
        # Keys sorted by code point, the same escapes, shortest round-trip floats (checked against
        # rfc8785 on 400,000 floats of the plain range, none differed): ~1 µs against ~5 for the
        # json encoder per record.
        try:
            return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate: the reference encoder says why it is refused
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


_INDEXED_TEXT = tuple(name for name in INDEXED_FIELDS if name != "status")


def _indexed(record: Mapping[str, Any]) -> dict[str, Any]:
    """The search columns copied from a record: text cut to 255 characters, ``status`` an integer or nothing."""
    get = record.get
    values = {name: None if (value := get(name)) is None else str(value)[:255] for name in _INDEXED_TEXT}
    status = get("status")
    values["status"] = status if isinstance(status, int) and not isinstance(status, bool) else None
    return values


def row_values(record: Mapping[str, Any], index: int, canonical: bytes | None = None) -> dict[str, Any]:
    """The ``audit_records`` row of ``record`` at ``index``; ``canonical``: its
    ``canonical_leaf`` bytes when the caller has them already. :raise BadRecord:"""
    if record.get("kind") not in KINDS:
        raise BadRecord(f"record kind must be one of {KINDS}")
    if canonical is None:
        try:
            canonical = canonical_leaf(record)
        except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
            raise BadRecord(f"record is not canonicalisable JSON: {exc}") from None
    values = _indexed(record)
    values.update(leaf_index=index, leaf=canonical.decode(), leaf_hash=merkle.leaf_hash(canonical, hash_fn=HASH),
                  kind=record["kind"], time=record_time(record))
    return values


# -- appends --------------------------------------------------------------------------------

# The writer's rows go to the driver (common.merkle_log.driver.RowsInsert, as the seal log's):
# SQLAlchemy's per-row parameter building cost more than SQLite's own insert.
_INSERT_RECORDS = RowsInsert(AuditRecord.__table__)
_INSERT_NODES = RowsInsert(AuditNode.__table__)


def frontier(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``[0, size)`` decomposes into, largest first, as (level, index)."""
    keys, start = [], 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def append_records(session: Session, records: list[Mapping[str, Any]],
                   *, canonical: list[bytes] | None = None) -> list[int]:
    """Append records in the caller's transaction; returns their leaf indexes (the caller commits).
    ``canonical``: each record's ``canonical_leaf`` bytes, when the caller made them already.
    The indexes and node rows come from ``MerkleNodeStore.append_nodes``, the seal log's append too.

    :raise BadRecord: a record cannot be a leaf (raised before anything is written or locked).
    """
    if not records:
        return []
    if canonical is not None and len(canonical) != len(records):
        raise ValueError("one canonical form per record")
    # Every record is checked and hashed before the head's lock is taken; its index comes after.
    rows = [row_values(record, -1, canonical[i] if canonical is not None else None)
            for i, record in enumerate(records)]
    with pipelined(session):  # on PostgreSQL the head's advance and the node read: one round trip
        start, new_nodes = STORE.append_nodes(session, [row["leaf_hash"] for row in rows])
    for offset, row in enumerate(rows):
        row["leaf_index"] = start + offset
    _INSERT_RECORDS.execute_many(session, rows)
    _INSERT_NODES.execute_many(session, new_nodes)
    return [row["leaf_index"] for row in rows]


# -- the node store: roots and proofs (common.merkle_log.store, shared with the seal log) -----


def pruned_below(session: Session) -> int:
    return int(session.execute(select(_HEAD.c.pruned_below).where(_HEAD.c.id == HEAD_ID)).scalar() or 0)


log_size = STORE.log_size
fetch_nodes = STORE.fetch_nodes
with_prefetched_nodes = STORE.with_prefetched_nodes
root_hash = STORE.root_hash
inclusion_proof = STORE.inclusion_proof
consistency_proof = STORE.consistency_proof


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
