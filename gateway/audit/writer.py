"""The writer: moves spooled records into the audit log, exactly once.

Its own process per spool (``python -m gateway.audit_writer``), beside the edge, not a thread
in it: the leaf hashing and the SQL cost 150-500 µs of CPU per record, which under the edge's
GIL came straight off its request rate. Not a Celery task either: the spool is a file on the
edge's own disk, so the reader must run where the file is; a process polling it drains it
within milliseconds, needs no broker, and keeps one owner per spool (``writer.lock``).
Each pass reads a batch from the spool at the position saved in ``audit_spool_state``, appends
it to the Merkle log and saves the new position *in the same transaction*; only after the commit
are the spool's consumed segments deleted. A crash before the commit redoes the batch (nothing
of it was kept); a crash after it finds the position already past the batch: no duplicates.
After moving records it publishes a signed checkpoint when the newest is older than
``AUDIT_CHECKPOINT_INTERVAL``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, insert, select, update

from common.crypto.keystore import load_kek
from common.db import Database, utcnow
from gateway.audit import checkpoints, log
from gateway.audit.config import setting, spool_dir
from gateway.audit.models import AuditSpoolState
from gateway.audit.spool.reader import SpoolReader

logger = structlog.get_logger("xsn.gateway.audit.writer")

_STATE = AuditSpoolState.__table__
_SAVED_POSITION = select(_STATE.c.position).where(_STATE.c.spool_id == bindparam("spool"))
_INSERT_POSITION = insert(_STATE)
# A compare-and-set: the pass saves its position only over the one it started from. A row gone
# or moved meanwhile (another writer, an operator) matches nothing, and the pass is rolled back:
# committing would leave the position unsaved and the next pass would append the same records
# to the append-only log again.
_SAVE_POSITION = update(_STATE).where(_STATE.c.spool_id == bindparam("spool"),
                                      _STATE.c.position == bindparam("saved"))


class SpoolPositionLost(RuntimeError):
    """The spool's saved position changed or vanished during a pass (the pass is rolled back)."""


def as_leaf(record: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The edge's record as a leaf (kind ``request``) and its canonical bytes (made once: they
    decide whether it can be kept as it is, and are what the log stores). A record whose time
    cannot be read is kept, not dropped: it is stamped with the writer's time and keeps what it
    said; one that has no canonical JSON form is kept as a string.

    :raise log.BadRecord: not even that has a canonical form (a lone surrogate in its request id).
    """
    leaf = {**record, "kind": "request"}
    try:
        log.record_time(leaf)
    except log.BadRecord:
        leaf["spooled_time"] = str(record.get("time"))[:64]
        leaf["time"] = utcnow().isoformat()
    try:
        return leaf, log.canonical_leaf(leaf)
    except (TypeError, ValueError):
        # Not canonicalisable (an integer beyond 2**53, a lone surrogate, say): keep it whole as
        # a string rather than let one record stop the writer (and, through the bound, the
        # gateway). Every part of this form is encodable: json.dumps escapes to ASCII, and the
        # request id is made plain UTF-8 (a lone surrogate becomes a backslash escape).
        request_id = str(record.get("request_id"))[:128].encode("utf-8", "backslashreplace").decode()
        leaf = {"kind": "request", "time": leaf["time"], "request_id": request_id,
                "unencodable": json.dumps(record, sort_keys=True, default=str)}
        return leaf, log.canonical_leaf(leaf)


def error_summary(exc: BaseException) -> str:
    """What ``/readyz`` shows of a failed pass: the exception's type, never its message (a
    database error's quotes the host, the user and the SQL); a disk error adds its errno and
    strerror (ENOSPC, EIO: what the operator must mend, naming no file), as the spool's logs do."""
    summary = type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None:
        summary += f" errno={exc.errno} ({exc.strerror})"
    return summary


class AuditWriter:
    def __init__(self, spool: SpoolReader, database: Database, *, batch: int = 500, interval: float = 0.05,
                 kek: bytes | None = None, origin: str = "xsn.xian/gateway-audit-log",
                 checkpoint_interval: float = 5.0) -> None:
        self.spool, self.database = spool, database
        self.batch, self.interval = int(batch), float(interval)
        self.kek, self.origin, self.checkpoint_interval = kek, origin, float(checkpoint_interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The saved position as of the last pass: while the spool has nothing beyond it, a pass
        # costs no database round trip (an idle edge polls its spool, not the database).
        self._known_position: int | None = None
        self._last_publish_check = 0.0
        self.moved = 0
        self.last_error: str | None = None

    def move_once(self) -> int:
        """Move one batch; returns how many records moved. :raise SpoolCorrupt: damaged spool."""
        if self._known_position is not None and self.spool.durable_end <= self._known_position:
            return 0
        self._known_position = None  # unknown until this pass commits (a failure must re-read it)
        with self.database.session() as session:
            # Core statements, not the ORM's get and flush: a pass's fixed cost (~0.4 ms) is what
            # a small batch pays per record.
            saved = session.execute(_SAVED_POSITION, {"spool": self.spool.spool_id}).scalar()
            position = saved if saved is not None else self.spool.first_position()
            records, after = self.spool.read(position, max_records=self.batch)
            if not records:
                self.spool.release(position)
                self._known_position = position
                return 0
            leaves, canonical = zip(*(as_leaf(r) for r in records), strict=True)
            log.append_records(session, list(leaves), canonical=list(canonical))
            if saved is None:
                session.execute(_INSERT_POSITION, {"spool_id": self.spool.spool_id, "position": after,
                                                   "updated_at": utcnow()})
            else:
                saving = session.execute(_SAVE_POSITION, {"spool": self.spool.spool_id, "saved": saved,
                                                          "position": after, "updated_at": utcnow()})
                if saving.rowcount != 1:  # the session's block rolls the pass back
                    raise SpoolPositionLost(f"spool {self.spool.spool_id}: position {saved} not found "
                                            f"when saving {after} (rows matched: {saving.rowcount})")
            session.commit()
        self._known_position = after
        self.spool.release(after)
        self.moved += len(records)
        return len(records)

    def drain(self) -> int:
        """Move everything durable now (tools, tests, shutdown)."""
        total = 0
        while moved := self.move_once():
            total += moved
        return total

    def maybe_publish(self) -> None:
        """Sign a checkpoint if the log grew and the newest is older than the interval (looked at
        no more than once per interval: the auditor API's own records grow the log too)."""
        now = time.monotonic()
        if self.kek is None or now - self._last_publish_check < self.checkpoint_interval:
            return
        self._last_publish_check = now
        with self.database.session() as session:
            newest = checkpoints.newest(session)
            size = log.log_size(session)
            if newest is not None and (newest.tree_size >= size or utcnow() - newest.created_at
                                       < timedelta(seconds=self.checkpoint_interval)):
                return
            checkpoints.publish(session, checkpoints.load_signer(session, self.kek, self.origin))

    def run(self, stop: threading.Event) -> None:
        """Move records until ``stop`` is set, then drain what is durable. Each pass is
        reported in the spool's shared state (the edge's ``/readyz``)."""
        wait = 0.0
        while not stop.wait(wait):
            try:
                moved = self.move_once()
                self.maybe_publish()
                self.last_error = None
                wait = 0.0 if moved >= self.batch else self.interval
            except Exception as exc:  # the writer must outlive a database outage; the bound shows it
                self.last_error = error_summary(exc)
                logger.error("audit_writer_failed", error_type=type(exc).__name__)
                wait = 1.0
            self.spool.shared.beat(self.moved, self.last_error)
        try:
            self.drain()
        except Exception as exc:  # shutting down: what is left stays in the spool for next time
            logger.error("audit_writer_final_drain_failed", error_type=type(exc).__name__)

    def start(self) -> AuditWriter:
        """Run in a thread (tests and tools; the shipped writer runs :meth:`run` in its own process)."""
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="audit-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def open_writer(config: Mapping[str, Any], *, worker: str = "0", database: Database | None = None) -> AuditWriter:
    """The writer for one edge process's spool (``worker``: that process's stable name, ``0``,
    ``1``, ...), with the settings in ``config`` (the gateway's configuration)."""
    spool = SpoolReader(spool_dir(config, worker))
    return AuditWriter(spool, database or Database(config["DATABASE_URL"]),
                       batch=int(setting(config, "AUDIT_WRITER_BATCH")),
                       interval=float(setting(config, "AUDIT_WRITER_INTERVAL")), kek=load_kek(config),
                       origin=str(setting(config, "AUDIT_LOG_ORIGIN")),
                       checkpoint_interval=float(setting(config, "AUDIT_CHECKPOINT_INTERVAL")))


def spool_positions(database: Database) -> dict[str, int]:
    with database.session() as session:
        return dict(session.execute(select(AuditSpoolState.spool_id, AuditSpoolState.position)).all())
