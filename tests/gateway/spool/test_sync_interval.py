"""The sync interval: under load a group's fsync waits for the interval so the next group is
larger; a lone caller never waits; a failure after the wait refuses every caller that waited;
the backlog bound refuses at once while a group waits.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time

import pytest

from gateway.audit.spool import AuditUnavailable
from gateway.audit.spool.files import encode_frame
from tests.gateway.conftest import run_async
from tests.gateway.spool.support import record_of, timed_writes, write_many


def test_under_load_fsyncs_are_spaced_by_the_sync_interval(spools):
    spool = spools(sync_interval=0.05)
    writes = timed_writes(spool)

    async def caller(i):
        for j in range(4):
            await spool.record(record_of(i * 10 + j))

    async def main():
        await asyncio.gather(*(caller(i) for i in range(50)))

    run_async(main)
    spool.close()
    assert sum(n for _t, n in writes) == 200
    gaps = [later[0] - earlier[0] for earlier, later in zip(writes, writes[1:], strict=False) if earlier[1] > 1]
    assert gaps and min(gaps) >= 0.049  # after a group, the next batch waited for the interval
    assert len(writes) <= 8  # 50 callers x 4: a few large groups, not one fsync per wake-up
    assert 0 < spool.stats()["sync_waits"] <= len(gaps)  # waits after groups (none after the last)


def test_a_lone_caller_does_not_wait_for_the_sync_interval(spools):
    spool = spools(sync_interval=5.0)
    writes = timed_writes(spool)
    started = time.monotonic()

    async def main():
        for i in range(10):
            await spool.record(record_of(i))

    run_async(main)
    spool.close()
    assert [n for _t, n in writes] == [1] * 10
    assert time.monotonic() - started < 5.0  # no record waited for the interval
    assert spool.stats()["sync_waits"] == 0


def test_a_write_failing_after_the_wait_refuses_every_caller_that_waited(monkeypatch, spools, read_ids):
    spool = spools(sync_interval=0.5)
    write_many(spool, 3)
    end, group_started = spool.durable_end, spool._last_sync

    def broken(_fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    monkeypatch.setattr(os, "fsync", broken)
    writes = timed_writes(spool)

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(spool.record(record_of(i)) for i in range(3, 6)), return_exceptions=True), 5)

    results = run_async(main)
    monkeypatch.undo()
    assert [type(r) for r in results] == [AuditUnavailable] * 3  # none hung, none was told it was kept
    assert len(writes) == 1 and writes[0][1] == 3 and writes[0][0] - group_started >= 0.49  # it had waited
    assert spool.stats()["sync_waits"] == spool.stats()["sync_waits_gathering_nobody"] == 1  # nobody came
    assert spool.durable_end == end and spool.backlog_bytes == end
    write_many(spool, 1)
    assert read_ids() == ["r0", "r1", "r2", "r0"]


def test_the_backlog_bound_refuses_at_once_while_a_group_waits(spools):
    one = len(encode_frame(record_of(0)))
    spool = spools(sync_interval=1.0, max_backlog_bytes=4 * one)
    write_many(spool, 2)  # a group of two: the next fsync waits for the interval
    started, group_started = time.monotonic(), spool._last_sync

    async def main():
        waiting = [asyncio.ensure_future(spool.record(record_of(i))) for i in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(AuditUnavailable):  # the bound: refused now, not after the wait
            await spool.record(record_of(4))
        refused_after = time.monotonic() - started
        await asyncio.gather(*waiting)
        return refused_after

    assert run_async(main) < 0.5
    assert time.monotonic() - group_started >= 0.99  # the two accepted records did wait for the interval
