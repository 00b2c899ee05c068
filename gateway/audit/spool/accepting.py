"""The audit spool: a log of framed audit records on the edge's own disk, made durable by ``fdatasync``.

Every request's audit record is written here, and made durable, before its response completes;
the background writer (:mod:`gateway.audit.writer`) later moves the records into the database's
Merkle log. The spool is what makes "never silently dropped" cheap: one sync of a local file
covers every record that arrived while the previous fsync ran (group commit), where a database
commit per request would cost a transaction each.

The edge process only appends (:class:`AuditSpool`); the writer is its own process
(``python -m gateway.audit_writer``, reading through :mod:`gateway.audit.spool.reader`),
so moving records into the database costs the edge nothing.

On disk: a directory holding ``spool.id`` (a random id, so the writer can tell a new spool from
the one its saved position belongs to), ``lock`` (``flock``: one edge process per spool),
``writer.lock`` (one writer process per spool), ``state`` (what the two tell each other:
:mod:`gateway.audit.spool.state`) and segment files ``<start>.seg``, where ``<start>`` is the
global byte position of the segment's first frame. A frame is ``>II`` (payload length, CRC-32
of the payload) followed by the payload, compact JSON of one record. Positions are global byte
offsets across segments, so "everything before position P has reached the database" is one
integer, saved by the writer in the same transaction as the records (exactly once).

Crash safety: a frame is acknowledged only after the fsync that covers it returned. A crash in
the middle of a write leaves a torn frame at the end of the newest segment; reopening the spool
finds the first frame whose length or CRC does not check and cuts the segment there. Nobody was
told that record was kept: its request never got a response.

The file itself (the newest segment: zeros filled ahead, ``fdatasync``, rotation, a torn tail cut
on reopen, a failed write undone, a full disk) is :mod:`gateway.audit.spool.segment_writer`'s;
this module accepts records, groups them and answers their callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import structlog

from common.errors import ServiceUnavailable
from gateway.audit.spool.files import encode_frame, lock_exclusively, read_or_create_id
from gateway.audit.spool.segment_writer import SegmentWriter
from gateway.audit.spool.state import SpoolState

log = structlog.get_logger("xsn.gateway.audit.spool")


class AuditUnavailable(ServiceUnavailable):
    """The spool cannot take a record (write failed, or the backlog passed its bound): answer 503."""

    code, title = "audit_unavailable", "Audit log unavailable"


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Callable[[BaseException | None], None]:
    """For the sync thread: settles ``future`` on its loop's thread."""

    def settle(error: BaseException | None) -> None:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def done(error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left waiting
            loop.call_soon_threadsafe(settle, error)

    return done


class AuditSpool:
    """The edge's side of the spool: append with group commit, from asyncio (``await spool.record(r)``).

    ``max_backlog_bytes``: bytes written but not yet moved to the database (as the writer
    process reports in the shared state) beyond which a new record is refused
    (:class:`AuditUnavailable`), so a stalled writer or database shows as 503s rather than as a
    disk filling up. ``group_window``: seconds to wait for more records before an fsync (0: the
    records that arrive while one fsync runs share the next; that alone batches under load
    without adding latency when idle). ``sync_interval``: while fsyncs carry more than one record
    (load), at most one starts per this many seconds, so each carries more (an fsync costs
    70-120 µs of CPU here whatever it carries); once one carries a single record, the next
    starts at once again. ``max_batch``: records per fsync at most (1 gives fsync per record,
    for comparison). One thread does every write and fsync, so frames
    reach the file in the order they were accepted, and the event loop keeps serving meanwhile.
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_backlog_bytes: int = 64 * 1024 * 1024,
                 segment_bytes: int = 16 * 1024 * 1024, group_window: float = 0.0, max_batch: int = 512,
                 sync_interval: float = 0.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_backlog_bytes = int(max_backlog_bytes)
        self.group_window, self.max_batch = float(group_window), max(1, int(max_batch))
        self.sync_interval = float(sync_interval)
        self._last_sync = 0.0  # time.monotonic() when the last fsync started
        self._last_batch = 0  # records it carried
        self._sync_waits = 0  # sync_interval waits made (stats)
        self._sync_waits_gathering_nobody = 0  # of them, those after which no record had joined
        self._lock_fd = lock_exclusively(self.directory / "lock", "edge process")
        self.spool_id = read_or_create_id(self.directory)
        self.shared = SpoolState(self.directory)
        # The sync thread writes; the segment size is the writer's alone (read at each rotation).
        self.segments = SegmentWriter(self.directory, segment_bytes=int(segment_bytes))
        self._moved_floor = self.segments.oldest_start
        self.shared.durable_end = self.segments.durable_end
        self._accepted_end = self.segments.durable_end  # bytes accepted (pending included)
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flushing = False
        # One thread does every write and fsync (in submission order) and wakes the loop itself
        # when a batch is durable: no concurrent.futures future, work item and condition per
        # batch, as run_in_executor makes.
        self._jobs: queue.SimpleQueue[tuple[list[bytes], Callable[[BaseException | None], None]] | None] = \
            queue.SimpleQueue()
        self._submitting = threading.Lock()
        self._stopping = False
        self._syncer = threading.Thread(target=self._sync_forever, name="audit-spool", daemon=True)
        self._syncer.start()
        self._closed = False

    # -- writing ------------------------------------------------------------------------------

    @property
    def backlog_bytes(self) -> int:
        """Bytes accepted but not yet moved to the database."""
        return self._accepted_end - max(self.shared.moved, self._moved_floor)

    @property
    def durable_end(self) -> int:
        return self.segments.durable_end

    @property
    def fsyncs(self) -> int:
        """How many fsyncs of records the spool made (for the benchmark and tests)."""
        return self.segments.fsyncs

    def _accept(self, frame: bytes) -> None:
        if self._closed:
            raise AuditUnavailable("the audit spool is closed")
        if self.segments.broken:
            raise AuditUnavailable("the audit spool failed a write and must be reopened")
        if self._accepted_end + len(frame) - max(self.shared.moved, self._moved_floor) > self.max_backlog_bytes:
            raise AuditUnavailable("the audit spool is full: records are not reaching the database")
        self._accepted_end += len(frame)

    async def record(self, record: Mapping[str, Any]) -> None:
        """Return once the record is on disk (fsynced).

        :raise AuditUnavailable: the backlog is past its bound, or the write or fsync failed.
        :raise TypeError: the record is not a JSON object of plain values (a caller's bug).
        """
        frame = encode_frame(record)
        self._accept(frame)  # only the loop's thread accepts: no lock needed
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((frame, future))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush_loop())
        await future

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                if self.group_window > 0:
                    await asyncio.sleep(self.group_window)
                elif self.sync_interval > 0 and self._last_batch > 1:
                    # Under load (the last fsync carried several records), at most one fsync
                    # starts per interval, so each carries more; a lone caller waits for nobody.
                    wait = self._last_sync + self.sync_interval - time.monotonic()
                    if wait > 0:
                        waiting = len(self._pending)
                        await asyncio.sleep(wait)
                        self._sync_waits += 1
                        self._sync_waits_gathering_nobody += len(self._pending) == waiting
                self._last_sync = time.monotonic()
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                self._last_batch = len(batch)
                synced: asyncio.Future[None] = loop.create_future()
                try:
                    self._submit([frame for frame, _ in batch], _resolver(loop, synced))
                    await synced
                # Whatever failed (the disk, a closed spool), every waiting caller must hear of
                # it: an unresolved future would hang its request forever.
                except Exception as exc:
                    self._accepted_end -= sum(len(frame) for frame, _ in batch)
                    # A disk error's errno and strerror (ENOSPC, EIO) are what the operator
                    # needs and hold no record's content; other messages are left out.
                    log.error("audit_spool_write_failed", error_type=type(exc).__name__,
                              errno=getattr(exc, "errno", None), strerror=getattr(exc, "strerror", None),
                              records=len(batch))
                    for _frame, future in batch:
                        if not future.done():
                            future.set_exception(AuditUnavailable("the audit spool cannot be written"))
                    continue
                for _frame, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._flushing = False

    def _submit(self, frames: list[bytes], done: Callable[[BaseException | None], None]) -> None:
        """Hand ``frames`` to the sync thread; ``done(error or None)`` is called there after the fsync.

        :raise RuntimeError: the spool is closed (its thread has stopped or is stopping), or its
            thread died: a job handed to it now would never be answered.
        """
        with self._submitting:
            if self._stopping:
                raise RuntimeError("the audit spool is closed")
            if not self._syncer.is_alive():
                raise RuntimeError("the audit spool's sync thread is not running")
            self._jobs.put((frames, done))

    def _sync_forever(self) -> None:
        """The sync thread: every write and fsync, in the order submitted, until ``close``."""
        while (job := self._jobs.get()) is not None:
            frames, done = job
            error: BaseException | None = None
            try:
                self._write(frames)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                error = exc
            # A callback that raises must not end this thread: every later record would then
            # wait forever for a write nobody makes.
            try:
                done(error)
            except Exception as exc:  # logged; the thread goes on to the next batch
                log.error("audit_spool_callback_failed", error_type=type(exc).__name__, records=len(frames))

    def write_sync(self, record: Mapping[str, Any]) -> None:
        """Blocking append with its own fsync (tools and tests; the edge uses :meth:`record`).

        :raise AuditUnavailable: as :meth:`record`.
        """
        frame = encode_frame(record)
        self._accept(frame)
        written: Future[None] = Future()
        try:
            self._submit([frame], lambda exc: written.set_exception(exc) if exc else written.set_result(None))
            written.result()
        except (OSError, RuntimeError, ValueError) as exc:  # disk, closed spool, closed file
            self._accepted_end -= len(frame)
            raise AuditUnavailable("the audit spool cannot be written") from exc

    def _write(self, frames: list[bytes]) -> None:
        """The sync thread: the frames written and synced, then their end published to the writer.

        :raise OSError: see :meth:`SegmentWriter.write` (the file is left as it was).
        """
        self.shared.durable_end = self.segments.write(frames)  # now the writer process may read them

    def stats(self) -> dict[str, Any]:
        """For ``/readyz`` and the benchmark: the fsyncs, and how often the group commit waited
        for ``sync_interval`` and how often such a wait gathered no record (a wait that only
        added latency)."""
        return {**self.segments.stats(), "sync_waits": self._sync_waits,
                "sync_waits_gathering_nobody": self._sync_waits_gathering_nobody}

    def close(self) -> None:
        self._closed = True
        with self._submitting:
            if not self._stopping:
                self._stopping = True
                self._jobs.put(None)  # after every batch already handed over: they are written first
        self._syncer.join()
        self.segments.close()
        self.shared.close()
        os.close(self._lock_fd)
