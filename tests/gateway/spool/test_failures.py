"""Failures refuse records (``AuditUnavailable``, the edge's 503) and lose nothing already
acknowledged: the backlog bound, a failed write or sync, a full disk, a failed rotation, a
callback that raises, a dead sync thread, a close while a batch is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading

import pytest

from gateway.audit.spool import AuditUnavailable
from gateway.audit.spool.files import encode_frame
from gateway.audit.spool.reader import SpoolReader
from tests.gateway.conftest import run_async
from tests.gateway.spool.support import failing_once, record_of, write_many


def test_backlog_bound_refuses_with_audit_unavailable(tmp_path, spools):
    one = len(encode_frame(record_of(0)))
    spool = spools(max_backlog_bytes=3 * one)
    write_many(spool, 3)
    with pytest.raises(AuditUnavailable) as caught:
        write_many(spool, 1)
    assert caught.value.status == 503 and caught.value.code == "audit_unavailable"
    reader = SpoolReader(tmp_path)
    reader.release(spool.durable_end)  # the writer process moved them: room again
    assert spool.backlog_bytes == 0
    write_many(spool, 1)
    reader.close()


def test_write_failure_refuses_and_recovers(monkeypatch, spool, read_ids):
    write_many(spool, 1)
    end = spool.durable_end

    def broken(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(AuditUnavailable):
        write_many(spool, 1)
    monkeypatch.undo()
    assert spool.durable_end == end and spool.backlog_bytes == end
    write_many(spool, 1)
    assert read_ids() == ["r0", "r0"]


def test_a_failed_batch_is_zeroed_and_never_read_back_after_a_restart(monkeypatch, spool, restart):
    write_many(spool, 1)
    end = spool.durable_end
    monkeypatch.setattr(os, "fdatasync", failing_once(errno.EIO))
    with pytest.raises(AuditUnavailable):
        write_many(spool, 5)  # written into the file, then the sync failed: these callers got 503
    monkeypatch.undo()
    assert not spool.segments.broken and spool.durable_end == end
    spool.write_sync(record_of(9))  # at the same offset, over the first failed frame only
    # No clean close: nothing cuts at the durable end, only the zeros keep r1..r4 out.
    assert restart(spool) == ["r0", "r9"]


def test_a_failed_batch_whose_zeros_cannot_be_synced_is_cut_off(tmp_path, monkeypatch, spool, restart):
    write_many(spool, 1)
    end = spool.durable_end
    segment = next(tmp_path.glob("*.seg"))

    def broken(_fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)  # the batch's sync and the zeros' sync both fail
    with pytest.raises(AuditUnavailable):
        write_many(spool, 5)
    monkeypatch.undo()
    assert not spool.segments.broken and segment.stat().st_size == end  # cut where the batch began
    spool.write_sync(record_of(9))
    assert restart(spool) == ["r0", "r9"]


@pytest.mark.parametrize("segment_bytes", [16 * 1024 * 1024, 200], ids=["fill", "rotate"])
def test_a_full_disk_refuses_records_until_space_comes_back(monkeypatch, segment_bytes, spools, restart):
    spool = spools(segment_bytes=segment_bytes)
    write_many(spool, 3)
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
            write_many(spool, 2)
    assert not spool.segments.broken
    full[0] = False  # space freed
    spool.write_sync(record_of(9))
    monkeypatch.undo()
    assert restart(spool) == ["r0", "r1", "r2", "r9"]  # exactly the acknowledged records


def test_a_failed_rotation_refuses_the_batch_leaks_no_descriptor_and_is_tried_again(tmp_path, monkeypatch, spools,
                                                                                    read_ids):
    from gateway.audit.spool import segment_writer

    spool = spools(segment_bytes=200)
    write_many(spool, 3)  # past 200 bytes: the next batch starts a segment
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
            spool.write_sync(record_of(5))
    assert segments_open() == descriptors  # no segment left open per try
    failing[0] = False
    spool.write_sync(record_of(9))
    spool.close()
    assert read_ids() == ["r0", "r1", "r2", "r9"]


def test_a_callback_that_raises_does_not_stop_the_sync_thread(spool):

    def raising(_error):
        raise RuntimeError("a bug in a caller's callback")

    spool._submit([], raising)  # an empty batch: written, fsynced, then the callback raises
    spool.write_sync(record_of(1))  # served after it: the thread went on
    assert spool._syncer.is_alive()


def test_a_dead_sync_thread_refuses_records_instead_of_hanging(spool):
    write_many(spool, 1)
    end = spool.durable_end
    spool._jobs.put(None)  # the thread ends as if it had died: nobody left to write
    spool._syncer.join()

    async def main():
        await asyncio.wait_for(spool.record(record_of(2)), 5)

    with pytest.raises(AuditUnavailable):
        run_async(main)
    with pytest.raises(AuditUnavailable):
        spool.write_sync(record_of(3))
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
        first = asyncio.ensure_future(spool.record(record_of(1)))
        while not entered.is_set():  # its batch is with the sync thread, held there
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(spool.record(record_of(2)))  # accepted, queued behind it
        await asyncio.sleep(0)
        closing = loop.run_in_executor(None, spool.close)
        while not spool._stopping:
            await asyncio.sleep(0.001)
        with pytest.raises(AuditUnavailable):  # after close() began: refused at once
            await spool.record(record_of(3))
        release.set()
        await asyncio.wait_for(first, 5)  # the batch in flight was written and answered
        with pytest.raises(AuditUnavailable):
            await asyncio.wait_for(second, 5)
        await asyncio.wait_for(closing, 5)

    run_async(main)
    assert read_ids() == ["r1"]
