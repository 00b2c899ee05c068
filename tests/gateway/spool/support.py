"""What the audit spool's tests put through it and read back: records, writes from many callers,
a killed edge, a failing ``fdatasync``, the batches handed to the sync thread.
"""

from __future__ import annotations

import asyncio
import os

from gateway.audit.spool import AuditSpool
from gateway.audit.spool.reader import SpoolReader
from tests.gateway.conftest import run_async


def record_of(i: int) -> dict:
    return {"time": "2026-12-01T10:00:00+00:00", "request_id": f"r{i}", "status": 200, "outcome": "ok"}


def write_many(spool: AuditSpool, n: int) -> None:
    async def main():
        await asyncio.gather(*(spool.record(record_of(i)) for i in range(n)))

    run_async(main)


def ids_from(reader: SpoolReader, position: int = 0) -> list[str]:
    return [r["request_id"] for r in reader.read(position)[0]]


def abandon(spool: AuditSpool) -> None:
    """As if the edge were killed: no clean close, so the zeros (and whatever else) after its frames stay."""
    spool._closed = spool._stopping = True
    spool._jobs.put(None)
    spool._syncer.join()
    os.close(spool.segments.fd)
    spool.segments.fd = None
    spool.shared.close()
    os.close(spool._lock_fd)


def failing_once(error: int):
    """An ``fdatasync`` that fails with ``error`` the first time, then syncs."""
    real, calls = os.fdatasync, []

    def sync(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(error, os.strerror(error))
        real(fd)

    return sync


def timed_writes(spool: AuditSpool) -> list[tuple[float, int]]:
    """(start, records) of each batch the spool hands to its sync thread from now on.

    The start is ``_last_sync``, read as the batch is submitted on the loop's thread: the time
    the interval is measured from. When the sync thread begins the write depends on how soon
    it gets a core, so timing that would fail under load while the interval was kept.
    """
    writes: list[tuple[float, int]] = []
    submit = spool._submit

    def timed(frames, done):
        writes.append((spool._last_sync, len(frames)))
        submit(frames, done)

    spool._submit = timed
    return writes
