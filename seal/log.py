"""The signature transparency log: appends, stored tree nodes, proofs, checkpoints, search, self-check.

RFC 6962 / RFC 9162 Merkle tree with SM3 (STANDARDS.md §5) built on :mod:`common.crypto.merkle`. Every
append stores the leaf and the perfect-subtree nodes it completes (the layout of
``common.crypto.merkle.MemoryTree``), so a root or proof is a handful of indexed reads, never a rebuild.

Ordering under concurrency: an append starts with ``UPDATE log_head SET size = size + 1 ...
RETURNING size``. On PostgreSQL that takes the row lock of the single head row, so concurrent
appends queue on it until the holder commits (READ COMMITTED re-reads the committed size after
the wait); on SQLite the first write of a transaction takes the database write lock, which
serialises writers the same way (busy_timeout turns contention into waiting). Either way the
index is assigned and the leaf stored in the caller's transaction: a rollback releases the
index with everything else, so there are no gaps, and the primary key on the leaf index makes a
duplicate impossible even if that reasoning were wrong.

Checkpoints are published in two ways. The beat-scheduled task ``seal.tasks.publish_checkpoint``
signs one every ``SEAL_LOG_CHECKPOINT_INTERVAL`` seconds when the log grew, so the log is
committed to within seconds of every append whether or not anyone reads it. Readers are served
by :func:`latest_checkpoint`, which re-signs when the newest checkpoint is stale and the log grew,
or when a proof needs a checkpoint covering a newer entry: what an auditor sees never depends on
the worker keeping up. ``xsn seal log checkpoint`` publishes one on demand.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rfc8785
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey, SM2PublicKey, sm3
from common.crypto.keystore import ACTIVE as KEY_ACTIVE
from common.crypto.keystore import KeyStore
from common.crypto.signed_note import Checkpoint, NoteError, compute_key_hint, sign_note, verify_note
from common.db import utcnow
from common.errors import NotFound, Problem
from seal.log_models import HEAD_ID, AuditQuery, LogCheckpoint, LogEntry, LogHead, LogNode
from seal.models import Base

HASH = merkle.sm3
HASH_SIZE = 32
LOG_KEY_PURPOSE = "log"
EVENT_FIELDS = ("type", "time", "seal_id", "seal_code", "org_code", "signer", "client_id",
                "document_digest", "signature_digest", "request_id")
# Search columns copied from the leaf (the leaf stays the authority; self-check compares them).
INDEXED_FIELDS = ("seal_id", "seal_code", "org_code", "signer", "client_id", "document_digest",
                  "signature_digest", "request_id")
MAX_RANGE = 100


class LogError(Problem):
    status, code, title = 400, "log_error", "Log request rejected"


class BadRange(LogError):
    code, title = "log_range_invalid", "Invalid log range"


class NoCheckpoint(NotFound):
    code, title = "checkpoint_not_found", "No checkpoint"


# -- leaves and appends ---------------------------------------------------------------------


def canonical_leaf(event: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of an event: the bytes the tree commits to."""
    return rfc8785.dumps(event)


def _event_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("event time must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("event time must carry a UTC offset")
    return parsed


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_HEAD = LogHead.__table__
# Prepared once: executing a built Core statement with parameters skips SQLAlchemy's per-call
# statement construction, which cost more than the statements themselves.
_ADVANCE_HEAD = (update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(size=_HEAD.c.size + 1)
                 .returning(_HEAD.c.size))
_INSERT_ENTRY = insert(LogEntry.__table__)
_INSERT_NODES = insert(LogNode.__table__)


def append_event(session: Session, event: dict[str, Any], *, ses_der: bytes | None = None) -> int:
    """Append a signing event to the log inside the caller's transaction; returns its leaf index.

    The caller commits (the entry becomes visible and durable with the signature that caused
    it) or rolls back (the index is released; no gap remains). Statements: the head
    ``UPDATE ... RETURNING``, one read of the left siblings when the leaf completes subtrees
    (every other append), the leaf ``INSERT`` and one ``executemany`` of the new nodes.
    :raise ValueError: the event has no ``type`` or no valid ``time``.
    """
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise ValueError("a log event needs a 'type'")
    when = _event_time(event.get("time"))
    leaf = canonical_leaf(event)
    leaf_hash = merkle.leaf_hash(leaf, hash_fn=HASH)

    connection = session.connection()
    size = connection.execute(_ADVANCE_HEAD).scalar_one_or_none()
    if size is None:
        raise LogError("the log head row is missing (run the migrations)", code="log_head_missing", status=500)
    index = size - 1

    values = {name: _str_or_none(event.get(name)) for name in INDEXED_FIELDS}
    values.update(leaf_index=index, leaf=leaf.decode(), leaf_hash=leaf_hash, event_type=event["type"], time=when,
                  ses_signature=base64.b64encode(ses_der).decode() if ses_der is not None else None,
                  appended_at=utcnow())
    connection.execute(_INSERT_ENTRY, values)
    connection.execute(_INSERT_NODES, _new_nodes(session, index, leaf_hash))
    return index


def _new_nodes(session: Session, index: int, leaf_hash: bytes) -> list[dict[str, Any]]:
    """Rows for the leaf and every perfect subtree it completes (one per trailing 1 bit of index)."""
    completes = (~index & (index + 1)).bit_length() - 1  # number of trailing 1 bits
    lefts = _fetch_nodes(session, [(level, (index >> level) - 1) for level in range(completes)])
    rows = [{"level": 0, "node_index": index, "hash": leaf_hash}]
    h = leaf_hash
    for level in range(completes):
        h = merkle.node_hash(lefts[(level, (index >> level) - 1)], h, hash_fn=HASH)
        rows.append({"level": level + 1, "node_index": index >> (level + 1), "hash": h})
    return rows


def _fetch_nodes(session: Session, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
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


# -- the node store: roots and proofs -------------------------------------------------------


def _with_prefetched_nodes(session: Session, compute: Callable[[merkle.GetNode], Any]) -> Any:
    """Run a ``common.crypto.merkle`` computation with its nodes read in one query.

    Which nodes a root or proof touches depends only on the sizes, not on hash values, so a dry
    run with placeholder hashes lists them; the real run then reads from that one fetch.
    """
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return bytes(HASH_SIZE)

    compute(record)
    nodes = _fetch_nodes(session, wanted)
    return compute(lambda level, index: nodes[(level, index)])


def log_size(session: Session) -> int:
    head = LogHead.__table__
    size = session.execute(select(head.c.size).where(head.c.id == HEAD_ID)).scalar()
    return int(size or 0)


def _check_size(session: Session, size: int) -> None:
    current = log_size(session)
    if not 0 <= size <= current:
        raise BadRange(f"tree size {size} is outside the log (size {current})")


def root_hash(session: Session, size: int) -> bytes:
    """MTH of the first ``size`` leaves. :raise BadRange: beyond the log."""
    _check_size(session, size)
    return _with_prefetched_nodes(session, lambda get: merkle.subtree_root(0, size, get, hash_fn=HASH))


def inclusion_proof(session: Session, index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of ``size``. :raise BadRange: out of bounds."""
    _check_size(session, size)
    if not 0 <= index < size:
        raise BadRange(f"leaf index {index} is outside a tree of size {size}")
    return _with_prefetched_nodes(session, lambda get: merkle.inclusion_proof(index, size, get, hash_fn=HASH))


def consistency_proof(session: Session, size1: int, size2: int) -> list[bytes]:
    """Proof that the tree of ``size2`` extends the tree of ``size1``. :raise BadRange: bad sizes."""
    _check_size(session, size2)
    if not 0 <= size1 <= size2:
        raise BadRange(f"no consistency proof from size {size1} to size {size2}: need 0 <= first <= second")
    return _with_prefetched_nodes(session, lambda get: merkle.consistency_proof(size1, size2, get, hash_fn=HASH))


# -- entries and search ---------------------------------------------------------------------


def get_entry(session: Session, index: int) -> LogEntry:
    """:raise NotFound: no entry at that index."""
    entry = session.get(LogEntry, index)
    if entry is None or index >= log_size(session):
        raise NotFound(f"no log entry at index {index}", code="log_entry_not_found")
    return entry


def entries_range(session: Session, start: int, end: int) -> list[LogEntry]:
    """Entries ``[start, end)``, at most :data:`MAX_RANGE`. :raise BadRange: out of bounds."""
    size = log_size(session)
    if not 0 <= start < end <= size:
        raise BadRange(f"range [{start}, {end}) is not within the log [0, {size}) or is empty")
    if end - start > MAX_RANGE:
        raise BadRange(f"at most {MAX_RANGE} entries per request")
    return list(session.scalars(select(LogEntry).where(LogEntry.leaf_index >= start, LogEntry.leaf_index < end)
                                .order_by(LogEntry.leaf_index)))


def find_by_leaf_hash(session: Session, leaf_hash: bytes, size: int) -> LogEntry:
    """The first entry with this leaf hash within the first ``size`` leaves. :raise NotFound:"""
    entry = session.scalars(select(LogEntry).where(LogEntry.leaf_hash == leaf_hash, LogEntry.leaf_index < size)
                            .order_by(LogEntry.leaf_index).limit(1)).first()
    if entry is None:
        raise NotFound(f"no leaf with that hash in the tree of size {size}", code="log_leaf_not_found")
    return entry


@dataclass
class SearchQuery:
    seal_id: str | None = None
    seal_code: str | None = None
    org_code: str | None = None
    signer: str | None = None
    document_digest: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def search_entries(session: Session, query: SearchQuery, *, page: int = 1,
                   per_page: int = 20) -> tuple[list[LogEntry], int]:
    """Entries matching every given criterion, newest first, and the total count.

    This reads the search columns, an index over the log: results are not proven by the search
    itself; each entry's inclusion proof is what an auditor checks.
    """
    conditions = [LogEntry.leaf_index < log_size(session)]
    for name in ("seal_id", "seal_code", "org_code", "signer"):
        value = getattr(query, name)
        if value:
            conditions.append(getattr(LogEntry, name) == value)
    if query.document_digest:
        conditions.append(LogEntry.document_digest == query.document_digest.lower())
    if query.since:
        conditions.append(LogEntry.time >= query.since)
    if query.until:
        conditions.append(LogEntry.time < query.until)
    total = session.scalar(select(func.count()).select_from(LogEntry).where(*conditions)) or 0
    rows = session.scalars(select(LogEntry).where(*conditions).order_by(LogEntry.leaf_index.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)


# -- checkpoints ----------------------------------------------------------------------------


@dataclass
class LogSigner:
    """The log's SM2 key seen as a signed-note signer; ``origin`` doubles as the key name."""

    origin: str
    key_id: str
    private_key: SM2PrivateKey

    @property
    def public_der(self) -> bytes:
        return self.private_key.public_key().to_der()


def _lock_head(session: Session) -> int:
    """Serialise with appends and other publishers; returns the committed log size.

    A no-op UPDATE of the head row is the portable ``SELECT ... FOR UPDATE``: a row lock on
    PostgreSQL, the database write lock on SQLite.
    """
    head = LogHead.__table__
    size = session.execute(update(head).where(head.c.id == HEAD_ID).values(size=head.c.size)
                           .returning(head.c.size)).scalar_one_or_none()
    if size is None:
        raise LogError("the log head row is missing (run the migrations)", code="log_head_missing", status=500)
    return int(size)


def newest_checkpoint(session: Session) -> LogCheckpoint | None:
    return session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)).first()


def publish_checkpoint(session: Session, signer: LogSigner) -> LogCheckpoint:
    """Sign and store a checkpoint of the current log, unless one of this size exists; commits.

    Idempotent: when the log did not grow the stored checkpoint is returned unchanged.
    """
    size = _lock_head(session)
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


def _signing_key_model() -> type:
    """The seal service's key-store table (``signing_keys``, defined with the seal models)."""
    for mapper in Base.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == "signing_keys":
            return mapper.class_
    raise LogError("the seal service has no signing_keys model", code="key_store_missing", status=500)


def key_store(session: Session, kek: bytes) -> KeyStore:
    return KeyStore(session, _signing_key_model(), kek)


def serialise_first_use(session: Session) -> None:
    """Take the log head's lock in the caller's transaction (held until it commits or rolls back).

    For one-time creations that must not happen twice when two workers get there at the same
    instant (the first log key, the first maker certificate): check, take this lock, check
    again, create. The head row is the one row every such writer can lock by a fixed key.
    """
    _lock_head(session)


def load_signer(session: Session, kek: bytes, origin: str) -> LogSigner:
    """The active log key, generated on first use (committed by the caller).

    Two publishers arriving together at an empty key store would each generate a key, leaving
    two active log keys; the creation therefore happens under :func:`serialise_first_use`, and
    the key store is read again once the lock is held, so the second publisher uses the key the
    first one committed. Should several active keys exist anyway (a store from before this
    rule), the oldest is used, so that every worker agrees.
    """
    store = key_store(session, kek)
    rows = store.public_keys(LOG_KEY_PURPOSE)
    active = [row for row in rows if row.status == KEY_ACTIVE]
    if not active:
        serialise_first_use(session)
        row = store.active(LOG_KEY_PURPOSE, create=False)
        if row is None:
            row = store.generate(LOG_KEY_PURPOSE)
        active = [row]
    row = active[0]
    return LogSigner(origin=origin, key_id=row.kid, private_key=store.private_key(row.kid))


def public_keys(session: Session, kek: bytes) -> list[Any]:
    """Every log key, active and retired: old checkpoints stay verifiable after a rotation."""
    return key_store(session, kek).public_keys(LOG_KEY_PURPOSE)


def verifiers(session: Session, kek: bytes, origin: str) -> dict[str, tuple[SM2PublicKey, str]]:
    return {row.kid: (SM2PublicKey.from_pem(row.public_pem.encode()), origin) for row in public_keys(session, kek)}


# -- audit records of auditor queries -------------------------------------------------------


def record_query(session: Session, *, subject: str | None, client_id: str | None, action: str,
                 query: dict[str, Any], status: int, request_id: str | None) -> AuditQuery:
    """Store one auditor query; the caller commits (failing the request if it cannot)."""
    outcome = "success" if status < 400 else "denied" if status in (401, 403) else "failure"
    row = AuditQuery(time=utcnow(), subject=subject, client_id=client_id, action=action,
                     query=json.dumps(query, sort_keys=True, ensure_ascii=False), status=status,
                     outcome=outcome, request_id=request_id)
    session.add(row)
    return row


def list_queries(session: Session, *, page: int, per_page: int) -> tuple[list[AuditQuery], int]:
    total = session.scalar(select(func.count()).select_from(AuditQuery)) or 0
    rows = session.scalars(select(AuditQuery).order_by(AuditQuery.id.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return list(rows), int(total)


# -- self-check (tamper evidence) -----------------------------------------------------------


@dataclass
class SelfCheckReport:
    size: int = 0
    entries_checked: int = 0
    nodes_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, code: str, detail: str, **where: Any) -> None:
        self.problems.append({"code": code, "detail": detail, **where})

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "entries_checked": self.entries_checked,
                "nodes_checked": self.nodes_checked, "checkpoints_checked": self.checkpoints_checked,
                "problems": self.problems}


def _check_entry(report: SelfCheckReport, entry: LogEntry) -> bytes:
    """Check one stored entry against its own leaf; returns the recomputed leaf hash."""
    index = entry.leaf_index
    recomputed = merkle.leaf_hash(entry.leaf.encode(), hash_fn=HASH)
    if bytes(entry.leaf_hash) != recomputed:
        report.add("leaf_hash_mismatch", "the stored leaf hash is not the hash of the stored leaf", index=index)
    try:
        event = json.loads(entry.leaf)
        if not isinstance(event, dict) or canonical_leaf(event) != entry.leaf.encode():
            raise ValueError("not canonical")
    except (ValueError, TypeError):
        report.add("leaf_not_canonical", "the stored leaf is not canonical JSON of an event", index=index)
        return recomputed
    for name in INDEXED_FIELDS:
        if _str_or_none(event.get(name)) != getattr(entry, name):
            report.add("index_mismatch", f"the search column {name} differs from the leaf", index=index)
    if entry.ses_signature is not None:
        try:
            der = base64.b64decode(entry.ses_signature, validate=True)
        except ValueError:
            der = b""
        if sm3(der).hex() != str(event.get("signature_digest", "")).lower():
            report.add("signature_digest_mismatch",
                       "the stored SES signature does not hash to the leaf's signature_digest", index=index)
    return recomputed


def self_check(session: Session, verifiers: dict[str, tuple[SM2PublicKey, str]]) -> SelfCheckReport:
    """Recompute the whole log from its stored entries and compare with nodes and checkpoints.

    ``verifiers`` maps a key id to (public key, origin) for checkpoint signatures. Reports
    changed, deleted and inserted entries and nodes, changed search columns and signature rows,
    checkpoints whose roots, signatures or mutual consistency fail. Reads the whole log: O(n).
    """
    report = SelfCheckReport(size=log_size(session))
    tree = merkle.MemoryTree(hash_fn=HASH)
    expected = 0
    for entry in session.scalars(select(LogEntry).order_by(LogEntry.leaf_index)).yield_per(1000):
        report.entries_checked += 1
        if entry.leaf_index >= report.size:
            report.add("entry_beyond_head", "an entry exists beyond the committed log size", index=entry.leaf_index)
            continue
        while expected < entry.leaf_index:
            report.add("entry_missing", "a log entry is missing", index=expected)
            tree.append_leaf_hash(bytes(HASH_SIZE))  # keep positions aligned for later checks
            expected += 1
        tree.append_leaf_hash(_check_entry(report, entry))
        expected += 1
    while expected < report.size:
        report.add("entry_missing", "a log entry is missing", index=expected)
        tree.append_leaf_hash(bytes(HASH_SIZE))
        expected += 1

    seen: set[tuple[int, int]] = set()
    for level, index, h in session.execute(select(LogNode.level, LogNode.index, LogNode.hash)).yield_per(5000):
        report.nodes_checked += 1
        seen.add((level, index))
        try:
            want = tree.get_node(level, index)
        except KeyError:
            report.add("node_unexpected", "a node exists that the log does not have", level=level, node=index)
            continue
        if bytes(h) != want:
            report.add("node_mismatch", "a stored node differs from the recomputed tree", level=level, node=index)
    for level, index in tree._nodes.keys() - seen:  # noqa: SLF001 - the reference tree's own layout
        report.add("node_missing", "a node of the tree is missing from the store", level=level, node=index)

    previous: Checkpoint | None = None
    for row in session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.tree_size)):
        report.checkpoints_checked += 1
        checkpoint = _check_checkpoint(report, row, verifiers)
        if checkpoint is None:
            continue
        if checkpoint.size > tree.size:
            report.add("checkpoint_beyond_log", "a checkpoint is larger than the stored log", size=checkpoint.size)
        elif checkpoint.root_hash != tree.root(checkpoint.size):
            report.add("checkpoint_root_mismatch", "the log no longer has the root this checkpoint signed",
                       size=checkpoint.size)
        if previous is not None and checkpoint.size <= tree.size:
            try:
                proof = tree.consistency_proof(previous.size, checkpoint.size)
                merkle.verify_consistency(previous.size, checkpoint.size, previous.root_hash,
                                          checkpoint.root_hash, proof, hash_fn=HASH)
            except (merkle.ProofError, ValueError) as exc:
                report.add("checkpoints_inconsistent", f"checkpoints {previous.size} and {checkpoint.size} "
                           f"are not consistent: {exc}", size=checkpoint.size)
        previous = checkpoint
    return report


def _check_checkpoint(report: SelfCheckReport, row: LogCheckpoint,
                      verifiers: dict[str, tuple[SM2PublicKey, str]]) -> Checkpoint | None:
    key = verifiers.get(row.key_id)
    if key is None:
        report.add("checkpoint_key_unknown", "a checkpoint names a key the log does not have", size=row.tree_size)
        return None
    public, origin = key
    try:
        checkpoint = verify_note(row.note, origin, public, public.to_der(), origin=origin)
    except NoteError as exc:
        report.add("checkpoint_signature_invalid", str(exc), size=row.tree_size)
        return None
    if checkpoint.size != row.tree_size or checkpoint.root_hash != bytes(row.root_hash):
        report.add("checkpoint_row_mismatch", "the checkpoint row differs from its signed note", size=row.tree_size)
    return checkpoint
