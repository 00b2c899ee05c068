"""The audit spool's inline and auto sync modes: what the thread mode does not have.

The spool's shared behaviour (group commit, failures, the interval, recovery) is tested in both
modes by ``test_audit_spool.py``; here: where an inline sync runs, what a slow sync does to the
loop, how ``auto`` chooses, ``close`` and ``write_sync`` beside the loop, and the setting.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from gateway.audit.spool import AuditSpool, AuditUnavailable, accepting
from gateway.audit.spool.reader import SpoolReader
from gateway.edge.audit_sink import DurableAuditSink
from tests.gateway.conftest import run_async


def _record(i: int) -> dict:
    return {"time": "2026-12-01T10:00:00+00:00", "request_id": f"r{i}", "status": 200, "outcome": "ok"}


@pytest.fixture
def spools(tmp_path):
    opened: list[AuditSpool] = []

    def open_spool(**options) -> AuditSpool:
        opened.append(AuditSpool(tmp_path, **options))
        return opened[-1]

    yield open_spool
    for spool in opened:
        if not spool._closed:
            spool.close()


def _read_ids(directory) -> list[str]:
    reader = SpoolReader(directory)
    try:
        return [r["request_id"] for r in reader.read(0, max_records=10_000)[0]]
    finally:
        reader.close()


def _slow_datasync(monkeypatch, seconds: list[float], *, disk: bool = True) -> list[str]:
    """``fdatasync`` taking ``seconds[0]`` more (changeable meanwhile); returns the threads' names
    it ran on. ``disk=False``: no real sync, so its time is only ``seconds[0]`` (the test
    machine's disk may be slower than the auto mode's limit)."""
    real, ran_on = os.fdatasync, []

    def slow(fd):
        ran_on.append(threading.current_thread().name)
        time.sleep(seconds[0])
        if disk:
            real(fd)

    monkeypatch.setattr(os, "fdatasync", slow)
    return ran_on


def test_inline_syncs_on_the_loops_thread_and_starts_no_thread(monkeypatch, spools):
    threads = threading.active_count()
    spool = spools(sync_mode="inline")
    assert spool._syncer is None and threading.active_count() == threads
    ran_on = _slow_datasync(monkeypatch, [0.0])

    async def main():
        await spool.record(_record(1))
        return threading.current_thread().name

    assert ran_on == [run_async(main)]
    assert spool.stats()["inline_syncs"] == 1


def test_the_records_of_one_loop_iteration_share_one_sync(tmp_path, spools):
    spool = spools(sync_mode="inline")

    async def main():
        await asyncio.gather(*(spool.record(_record(i)) for i in range(50)))

    run_async(main)
    assert spool.fsyncs == 1 and spool.stats()["records_per_fsync"] == 50
    assert _read_ids(tmp_path) == [f"r{i}" for i in range(50)]


def test_records_accepted_while_a_sync_blocks_the_loop_share_the_next(monkeypatch, spools):
    """Callers woken by the first sync's answers (as responses arriving meanwhile would be) all
    record in the next iteration: one more sync for all of them, not one each."""
    spool = spools(sync_mode="inline")
    _slow_datasync(monkeypatch, [0.02])

    async def caller(i):
        await spool.record(_record(i))
        await spool.record(_record(100 + i))

    async def main():
        await asyncio.gather(*(caller(i) for i in range(20)))

    run_async(main)
    assert spool.fsyncs == 2


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_a_slow_sync_stalls_the_loop_inline_and_not_with_the_thread(monkeypatch, spools, mode):
    """The price of inline: timers and other connections wait for the sync's wall time."""
    spool = spools(sync_mode=mode)
    _slow_datasync(monkeypatch, [0.2])

    async def main():
        loop = asyncio.get_running_loop()
        ticks: list[float] = []

        async def heartbeat():
            while True:
                ticks.append(loop.time())
                await asyncio.sleep(0.01)

        beating = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0.05)
        await spool.record(_record(1))
        await asyncio.sleep(0.05)
        beating.cancel()
        return max(later - earlier for earlier, later in zip(ticks, ticks[1:], strict=False))

    longest_gap = run_async(main)
    if mode == "inline":
        assert longest_gap >= 0.19
    else:
        assert longest_gap < 0.15


def test_auto_hands_slow_syncs_to_the_thread_and_takes_them_back_when_fast(monkeypatch, spools):
    spool = spools(sync_mode="auto")
    assert spool._syncer is not None  # ready for slow syncs
    delay = [0.0]
    ran_on = _slow_datasync(monkeypatch, delay, disk=False)

    async def one_by_one(first: int, count: int) -> None:
        for i in range(first, first + count):
            await spool.record(_record(i))

    loop_thread = []

    async def main():
        loop_thread.append(threading.current_thread().name)
        await one_by_one(0, 3)  # fast: inline
        delay[0] = 3 * accepting.AUTO_INLINE_BELOW_S
        await one_by_one(3, 20)  # slow: the average passes the limit, then the thread syncs
        delay[0] = 0.0
        await one_by_one(23, 40)  # fast again: back inline once the average has come down

    run_async(main)
    on_loop = [name == loop_thread[0] for name in ran_on]
    assert on_loop[:3] == [True] * 3
    assert not all(on_loop[3:23]) and on_loop[22] is False  # slow syncs went to the thread
    assert on_loop[-1] is True
    assert spool.stats()["inline_syncs"] < spool.fsyncs


def test_auto_switching_to_the_thread_under_load_loses_and_reorders_nothing(monkeypatch, tmp_path, spools):
    spool = spools(sync_mode="auto")
    delay = [0.0]
    _slow_datasync(monkeypatch, delay, disk=False)

    async def caller(i):
        for j in range(15):
            if i == 0 and j == 2:
                delay[0] = 3 * accepting.AUTO_INLINE_BELOW_S
            await spool.record(_record(i * 100 + j))

    async def main():
        await asyncio.gather(*(caller(i) for i in range(10)))

    run_async(main)
    spool.close()
    ids = _read_ids(tmp_path)
    for i in range(10):  # each caller's records in the order it made them, none lost
        assert [x for x in ids if int(x[1:]) // 100 == i] == [f"r{i * 100 + j}" for j in range(15)]
    assert len(ids) == 150
    assert 0 < spool.stats()["inline_syncs"] < spool.fsyncs


def test_closing_with_a_flush_scheduled_refuses_its_callers(spools, tmp_path):
    spool = spools(sync_mode="inline")

    async def main():
        waiting = asyncio.ensure_future(spool.record(_record(1)))
        await asyncio.sleep(0)  # accepted, its flush scheduled but not run
        await asyncio.to_thread(spool.close)  # as DurableAuditSink.close does
        with pytest.raises(AuditUnavailable):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(AuditUnavailable):
            await spool.record(_record(2))

    run_async(main)
    assert _read_ids(tmp_path) == []


def test_write_sync_from_another_thread_takes_turns_with_the_loop(spools, tmp_path):
    spool = spools(sync_mode="inline")

    def tool():
        for i in range(50):
            spool.write_sync(_record(1000 + i))

    async def main():
        writing = asyncio.ensure_future(asyncio.to_thread(tool))
        for i in range(50):
            await asyncio.gather(*(spool.record(_record(i * 4 + k)) for k in range(4)))
        await writing

    run_async(main)
    ids = _read_ids(tmp_path)
    assert len(ids) == 250 and len(set(ids)) == 250
    assert spool.durable_end == spool.segments.durable_end


def test_an_unknown_sync_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sync_mode"):
        AuditSpool(tmp_path, sync_mode="fast")


def test_the_setting_reaches_the_spool(tmp_path):
    config = {"AUDIT_SPOOL_DIR": str(tmp_path), "AUDIT_SPOOL_SYNC_MODE": "inline"}
    sink = DurableAuditSink(config, "0")
    try:
        assert sink.spool.sync_mode == "inline" and sink.spool.stats()["sync_mode"] == "inline"
    finally:
        sink.spool.close()
