"""The audit spool: group commit, torn-tail recovery, the backlog bound, segments and release.

The edge appends (``AuditSpool``); the writer process reads and releases (``SpoolReader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import threading
import time

import pytest

from gateway.audit.spool import AuditSpool, AuditUnavailable
from gateway.audit.spool.files import HEADER, SpoolCorrupt, encode_frame
from gateway.audit.spool.reader import SpoolReader
from tests.gateway.conftest import run_async


def _record(i: int) -> dict:
    return {"time": "2026-12-01T10:00:00+00:00", "request_id": f"r{i}", "status": 200, "outcome": "ok"}


def _write_many(spool: AuditSpool, n: int) -> None:
    async def main():
        await asyncio.gather(*(spool.record(_record(i)) for i in range(n)))

    run_async(main)


def _ids(reader: SpoolReader, position: int = 0) -> list[str]:
    return [r["request_id"] for r in reader.read(position)[0]]


def _abandon(spool: AuditSpool) -> None:
    """As if the edge were killed: no clean close, so the zeros (and whatever else) after its frames stay."""
    spool._closed = spool._stopping = True
    spool._jobs.put(None)
    spool._syncer.join()
    os.close(spool.segments.fd)
    spool.segments.fd = None
    spool.shared.close()
    os.close(spool._lock_fd)


@pytest.fixture
def spools(tmp_path):
    """``spools(**options)``: an ``AuditSpool`` on ``tmp_path`` (a reopened one, too). Whatever a
    test leaves open (an assertion failed half-way) is closed after it: no lock or thread leaks
    into the next test."""
    opened: list[AuditSpool] = []

    def open_spool(**options) -> AuditSpool:
        opened.append(AuditSpool(tmp_path, **options))
        return opened[-1]

    yield open_spool
    for spool in opened:
        if not spool._closed:
            spool.close()


@pytest.fixture
def spool(spools) -> AuditSpool:
    return spools()


@pytest.fixture
def read_ids(tmp_path):
    """``read_ids()``: the request ids a fresh reader (as the writer process) finds from the start."""

    def read() -> list[str]:
        reader = SpoolReader(tmp_path)
        try:
            return _ids(reader)
        finally:
            reader.close()

    return read


@pytest.fixture
def restart(spools, read_ids):
    """``restart(spool)``: the edge killed (no clean close) and started again; the ids read back."""

    def restart_(spool: AuditSpool) -> list[str]:
        _abandon(spool)
        spools()
        return read_ids()

    return restart_


def test_concurrent_records_share_fsyncs_and_come_back_in_order(tmp_path, spool):
    _write_many(spool, 200)
    assert spool.fsyncs < 20  # 200 records arriving together: a handful of group commits
    assert spool.stats()["records_per_fsync"] >= 10
    reader = SpoolReader(tmp_path)
    records, position = reader.read(0, max_records=1000)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(200)]
    assert position == spool.durable_end == reader.durable_end
    reader.close()


def test_the_reader_sees_only_what_the_edge_fsynced(tmp_path, spool):
    _write_many(spool, 2)
    reader = SpoolReader(tmp_path)
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as handle:  # written, not yet covered by an fsync the edge published
        handle.write(encode_frame(_record(7)))
    records, position = reader.read(0)
    assert [r["request_id"] for r in records] == ["r0", "r1"] and position == spool.durable_end
    assert reader.read(position) == ([], position)
    reader.close()


def test_a_restarted_edge_keeps_what_its_predecessor_wrote(tmp_path, spool, spools, read_ids):
    _write_many(spool, 2)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as handle:  # a whole frame the killed process wrote but never fsynced
        handle.write(encode_frame(_record(2)))
    spools()  # fsyncs it and publishes the new durable end
    assert read_ids() == ["r0", "r1", "r2"]


def test_max_batch_one_is_one_fsync_per_record(spools):
    spool = spools(max_batch=1)
    _write_many(spool, 20)
    assert spool.fsyncs == 20


def test_callers_are_released_only_after_their_fsync(monkeypatch, spool):
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd):  # the frames' sync (os.fsync only makes the zeros filled ahead durable)
        real_fdatasync(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)

    async def main():
        await spool.record(_record(1))
        return len(synced)

    assert run_async(main) >= 1


def test_torn_tail_is_cut_on_reopen(tmp_path, spool, spools, read_ids):
    _write_many(spool, 3)
    end = spool.durable_end
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as handle:  # a crash half-way through writing the fourth frame
        handle.write(encode_frame(_record(3))[:HEADER.size + 5])
    reopened = spools()
    assert reopened.durable_end == end
    assert segment.stat().st_size == end
    assert read_ids() == ["r0", "r1", "r2"]
    _write_many(reopened, 1)  # appends after the cut, readable again
    assert read_ids() == ["r0", "r1", "r2", "r0"]


def test_bad_crc_in_the_tail_is_also_cut(tmp_path, spool, spools):
    _write_many(spool, 2)
    end = spool.durable_end
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    frame = bytearray(encode_frame(_record(9)))
    frame[-1] ^= 0xFF
    with open(segment, "ab") as handle:
        handle.write(bytes(frame))
    reopened = spools()
    assert reopened.durable_end == end


def test_backlog_bound_refuses_with_audit_unavailable(tmp_path, spools):
    one = len(encode_frame(_record(0)))
    spool = spools(max_backlog_bytes=3 * one)
    _write_many(spool, 3)
    with pytest.raises(AuditUnavailable) as caught:
        _write_many(spool, 1)
    assert caught.value.status == 503 and caught.value.code == "audit_unavailable"
    reader = SpoolReader(tmp_path)
    reader.release(spool.durable_end)  # the writer process moved them: room again
    assert spool.backlog_bytes == 0
    _write_many(spool, 1)
    reader.close()


def test_write_failure_refuses_and_recovers(monkeypatch, spool, read_ids):
    _write_many(spool, 1)
    end = spool.durable_end

    def broken(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(AuditUnavailable):
        _write_many(spool, 1)
    monkeypatch.undo()
    assert spool.durable_end == end and spool.backlog_bytes == end
    _write_many(spool, 1)
    assert read_ids() == ["r0", "r0"]


def test_frames_go_into_zeros_filled_ahead_and_a_clean_close_cuts_them(tmp_path, spool):
    _write_many(spool, 3)
    segment = next(tmp_path.glob("*.seg"))
    assert segment.stat().st_size > spool.durable_end  # filled ahead: fdatasync flushes data only
    assert segment.read_bytes()[spool.durable_end:].count(0) == segment.stat().st_size - spool.durable_end
    reader = SpoolReader(tmp_path)
    assert _ids(reader) == ["r0", "r1", "r2"]
    end = spool.durable_end
    spool.close()
    assert segment.stat().st_size == end
    reader.close()


def test_a_killed_edge_leaves_zeros_after_its_frames_and_nothing_is_lost_or_warned(monkeypatch, spool, spools,
                                                                                     read_ids):
    _write_many(spool, 3)
    end = spool.durable_end
    _abandon(spool)
    warnings = []
    monkeypatch.setattr("gateway.audit.spool.segment_writer.log.warning", lambda event, **kw: warnings.append(event))
    reopened = spools()
    assert reopened.durable_end == end and warnings == []
    _write_many(reopened, 1)
    assert read_ids() == ["r0", "r1", "r2", "r0"]
    reopened.close()


def _failing_once(error: int):
    """An ``fdatasync`` that fails with ``error`` the first time, then syncs."""
    real, calls = os.fdatasync, []

    def sync(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(error, os.strerror(error))
        real(fd)

    return sync


def test_a_failed_batch_is_zeroed_and_never_read_back_after_a_restart(monkeypatch, spool, restart):
    _write_many(spool, 1)
    end = spool.durable_end
    monkeypatch.setattr(os, "fdatasync", _failing_once(errno.EIO))
    with pytest.raises(AuditUnavailable):
        _write_many(spool, 5)  # written into the file, then the sync failed: these callers got 503
    monkeypatch.undo()
    assert not spool.segments.broken and spool.durable_end == end
    spool.write_sync(_record(9))  # at the same offset, over the first failed frame only
    # No clean close: nothing cuts at the durable end, only the zeros keep r1..r4 out.
    assert restart(spool) == ["r0", "r9"]


def test_a_failed_batch_whose_zeros_cannot_be_synced_is_cut_off(tmp_path, monkeypatch, spool, restart):
    _write_many(spool, 1)
    end = spool.durable_end
    segment = next(tmp_path.glob("*.seg"))

    def broken(_fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)  # the batch's sync and the zeros' sync both fail
    with pytest.raises(AuditUnavailable):
        _write_many(spool, 5)
    monkeypatch.undo()
    assert not spool.segments.broken and segment.stat().st_size == end  # cut where the batch began
    spool.write_sync(_record(9))
    assert restart(spool) == ["r0", "r9"]


@pytest.mark.parametrize("segment_bytes", [16 * 1024 * 1024, 200], ids=["fill", "rotate"])
def test_a_full_disk_refuses_records_until_space_comes_back(monkeypatch, segment_bytes, spools, restart):
    spool = spools(segment_bytes=segment_bytes)
    _write_many(spool, 3)
    spool.close()  # cut at its frames: the next batch must grow the file
    spool = spools(segment_bytes=segment_bytes)
    real_pwrite, full = os.pwrite, [True]

    def full_disk(fd, data, offset):
        if full[0] and offset + len(data) > os.fstat(fd).st_size:  # new blocks: none left
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    for _ in range(2):
        with pytest.raises(AuditUnavailable):
            _write_many(spool, 2)
    assert not spool.segments.broken
    full[0] = False  # space freed
    spool.write_sync(_record(9))
    monkeypatch.undo()
    assert restart(spool) == ["r0", "r1", "r2", "r9"]  # exactly the acknowledged records


def test_a_failed_rotation_refuses_the_batch_leaks_no_descriptor_and_is_tried_again(tmp_path, monkeypatch, spools,
                                                                                    read_ids):
    from gateway.audit.spool import segment_writer

    spool = spools(segment_bytes=200)
    _write_many(spool, 3)  # past 200 bytes: the next batch starts a segment
    real = segment_writer.fsync_dir
    failing = [True]

    def fsync_dir(directory):
        if failing[0]:
            raise OSError(errno.EIO, "Input/output error")
        return real(directory)

    monkeypatch.setattr(segment_writer, "fsync_dir", fsync_dir)

    def segments_open() -> int:  # this spool's files only: other tests' objects may be collected meanwhile
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found += os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path))
        return found

    descriptors = segments_open()
    for _ in range(3):
        with pytest.raises(AuditUnavailable):
            spool.write_sync(_record(5))
    assert segments_open() == descriptors  # no segment left open per try
    failing[0] = False
    spool.write_sync(_record(9))
    spool.close()
    assert read_ids() == ["r0", "r1", "r2", "r9"]


def test_a_callback_that_raises_does_not_stop_the_sync_thread(spool):

    def raising(_error):
        raise RuntimeError("a bug in a caller's callback")

    spool._submit([], raising)  # an empty batch: written, fsynced, then the callback raises
    spool.write_sync(_record(1))  # served after it: the thread went on
    assert spool._syncer.is_alive()


def test_a_dead_sync_thread_refuses_records_instead_of_hanging(spool):
    _write_many(spool, 1)
    end = spool.durable_end
    spool._jobs.put(None)  # the thread ends as if it had died: nobody left to write
    spool._syncer.join()

    async def main():
        await asyncio.wait_for(spool.record(_record(2)), 5)

    with pytest.raises(AuditUnavailable):
        run_async(main)
    with pytest.raises(AuditUnavailable):
        spool.write_sync(_record(3))
    assert spool.durable_end == end and spool.backlog_bytes == end  # nothing counted as accepted


def test_closing_while_a_batch_is_in_flight_answers_it_and_refuses_the_rest(spool, read_ids):
    write, entered, release = spool._write, threading.Event(), threading.Event()

    def held(frames):
        entered.set()
        assert release.wait(10)
        write(frames)

    spool._write = held

    async def main():
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(spool.record(_record(1)))
        while not entered.is_set():  # its batch is with the sync thread, held there
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(spool.record(_record(2)))  # accepted, queued behind it
        await asyncio.sleep(0)
        closing = loop.run_in_executor(None, spool.close)
        while not spool._stopping:
            await asyncio.sleep(0.001)
        with pytest.raises(AuditUnavailable):  # after close() began: refused at once
            await spool.record(_record(3))
        release.set()
        await asyncio.wait_for(first, 5)  # the batch in flight was written and answered
        with pytest.raises(AuditUnavailable):
            await asyncio.wait_for(second, 5)
        await asyncio.wait_for(closing, 5)

    run_async(main)
    assert read_ids() == ["r1"]


def test_segments_rotate_and_release_deletes_consumed_ones(tmp_path, spools):
    spool = spools(segment_bytes=200)
    for _ in range(6):
        _write_many(spool, 2)
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) > 2
    reader = SpoolReader(tmp_path)
    records, position = reader.read(0, max_records=5)
    assert len(records) == 5
    rest, end = reader.read(position, max_records=100)
    assert len(rest) == 7 and end == spool.durable_end
    reader.release(end)
    assert len(list(tmp_path.glob("*.seg"))) == 1
    with pytest.raises(SpoolCorrupt):
        reader.read(0)
    _write_many(spool, 2)  # the edge goes on appending to the segment it kept
    assert len(reader.read(end)[0]) == 2
    reader.close()


def test_one_process_per_spool(spool, spools):
    with pytest.raises(RuntimeError, match="in use"):
        spools()
    spool.close()
    again = spools()
    assert again.spool_id == spool.spool_id
    again.close()


def test_one_writer_per_spool_beside_its_edge(tmp_path, spools):
    reader = SpoolReader(tmp_path)  # the writer may start before the edge: same spool id
    spool = spools()
    assert reader.spool_id == spool.spool_id
    with pytest.raises(RuntimeError, match="in use"):
        SpoolReader(tmp_path)
    reader.close()


def test_damaged_frame_before_the_end_is_corruption(tmp_path, spool):
    _write_many(spool, 3)
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[HEADER.size + 2] ^= 0xFF  # inside the first payload
    segment.write_bytes(bytes(data))
    reader = SpoolReader(tmp_path)
    with pytest.raises(SpoolCorrupt):
        reader.read(0)
    reader.close()


def test_non_json_record_is_a_caller_bug(spool):
    with pytest.raises(TypeError):
        run_async(lambda: spool.record({"latency_ms": float("nan")}))
    assert spool.backlog_bytes == 0


@pytest.mark.parametrize("record", [{"when": object()}, {"nested": {"x": float("inf")}}, {"id": "\ud800"}])
def test_records_the_fast_encoder_does_not_take_are_judged_by_json(record):
    with pytest.raises(TypeError):
        encode_frame(record)


def test_flat_and_nested_records_read_back_the_same(tmp_path, spool):
    records = [{"request_id": "é-1", "latency_ms": 0.125, "acr": None, "ok": True, "big": 2**70},
               # integers at the edges of 64 bits (orjson writes them, and would read 2**70 as a float)
               {"request_id": "i-1", "u64": 2**64 - 1, "i64": -(2**63), "below": -(2**63) - 1, "e17": 10**17},
               {"request_id": "n-2", "extra": {"b": [1, 2], "a": None}},
               # floats both encoders spell differently (1e-07 / 1e-7) or could lose (-0.0, 5.0)
               {"request_id": "f-3", "tiny": 1e-7, "huge": 1.5e300, "negzero": -0.0, "whole": 5.0},
               {"request_id": "f-4", "nested": {"tiny": 1e-7, "negzero": -0.0, "whole": 5.0}}]

    async def main():
        for record in records:
            await spool.record(record)

    run_async(main)
    reader = SpoolReader(tmp_path)
    read = reader.read(0)[0]
    assert read == records
    assert [{k: type(v) for k, v in r.items()} for r in read] == [{k: type(v) for k, v in r.items()} for r in records]
    assert math.copysign(1, read[3]["negzero"]) == -1 and math.copysign(1, read[4]["nested"]["negzero"]) == -1
    reader.close()
    spool.close()


def _timed_writes(spool: AuditSpool) -> list[tuple[float, int]]:
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


def test_under_load_fsyncs_are_spaced_by_the_sync_interval(spools):
    spool = spools(sync_interval=0.05)
    writes = _timed_writes(spool)

    async def caller(i):
        for j in range(4):
            await spool.record(_record(i * 10 + j))

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
    writes = _timed_writes(spool)
    started = time.monotonic()

    async def main():
        for i in range(10):
            await spool.record(_record(i))

    run_async(main)
    spool.close()
    assert [n for _t, n in writes] == [1] * 10
    assert time.monotonic() - started < 5.0  # no record waited for the interval
    assert spool.stats()["sync_waits"] == 0


def test_a_write_failing_after_the_wait_refuses_every_caller_that_waited(monkeypatch, spools, read_ids):
    spool = spools(sync_interval=0.5)
    _write_many(spool, 3)
    end, group_started = spool.durable_end, spool._last_sync

    def broken(_fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    monkeypatch.setattr(os, "fsync", broken)
    writes = _timed_writes(spool)

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(spool.record(_record(i)) for i in range(3, 6)), return_exceptions=True), 5)

    results = run_async(main)
    monkeypatch.undo()
    assert [type(r) for r in results] == [AuditUnavailable] * 3  # none hung, none was told it was kept
    assert len(writes) == 1 and writes[0][1] == 3 and writes[0][0] - group_started >= 0.49  # it had waited
    assert spool.stats()["sync_waits"] == spool.stats()["sync_waits_gathering_nobody"] == 1  # nobody came
    assert spool.durable_end == end and spool.backlog_bytes == end
    _write_many(spool, 1)
    assert read_ids() == ["r0", "r1", "r2", "r0"]


def test_the_backlog_bound_refuses_at_once_while_a_group_waits(spools):
    one = len(encode_frame(_record(0)))
    spool = spools(sync_interval=1.0, max_backlog_bytes=4 * one)
    _write_many(spool, 2)  # a group of two: the next fsync waits for the interval
    started, group_started = time.monotonic(), spool._last_sync

    async def main():
        waiting = [asyncio.ensure_future(spool.record(_record(i))) for i in (2, 3)]
        await asyncio.sleep(0.01)
        with pytest.raises(AuditUnavailable):  # the bound: refused now, not after the wait
            await spool.record(_record(4))
        refused_after = time.monotonic() - started
        await asyncio.gather(*waiting)
        return refused_after

    assert run_async(main) < 0.5
    assert time.monotonic() - group_started >= 0.99  # the two accepted records did wait for the interval


def test_a_disk_without_room_for_the_zeros_ahead_still_takes_the_frames(tmp_path, monkeypatch, spool, read_ids):
    real_pwrite = os.pwrite

    def small_disk(fd, data, offset):
        if len(data) > 64 * 1024:  # the zeros filled ahead do not fit; a batch of frames does
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", small_disk)
    _write_many(spool, 3)
    _write_many(spool, 2)
    monkeypatch.undo()
    segment = next(tmp_path.glob("*.seg"))
    assert segment.stat().st_size == spool.durable_end  # no zeros ahead: each batch filled only what it needed
    assert read_ids() == ["r0", "r1", "r2", "r0", "r1"]


def test_zeros_a_fill_left_past_what_it_kept_are_cut_on_close(tmp_path, monkeypatch, spool):
    real_pwrite = os.pwrite

    def filling_up(fd, data, offset):
        if len(data) > 64 * 1024:  # the zeros ahead: the first 100 KiB fit, then the disk is full
            if offset == 0:
                return real_pwrite(fd, bytes(data[:100 * 1024]), offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", filling_up)
    _write_many(spool, 2)
    monkeypatch.undo()
    segment = next(tmp_path.glob("*.seg"))
    assert segment.stat().st_size == 100 * 1024 > spool.durable_end  # longer than the fill kept
    end = spool.durable_end
    spool.close()
    assert segment.stat().st_size == end
