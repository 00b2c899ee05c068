"""Appends: concurrent records share fsyncs and come back in order, callers wait for their own
fsync, a restarted edge keeps its predecessor's records, segments rotate and are released,
one edge and one writer per spool.
"""

from __future__ import annotations

import os

import pytest

from gateway.audit.spool.files import SpoolCorrupt, encode_frame
from gateway.audit.spool.reader import SpoolReader
from tests.gateway.conftest import run_async
from tests.gateway.spool.support import record_of, write_many


def test_concurrent_records_share_fsyncs_and_come_back_in_order(tmp_path, spool):
    write_many(spool, 200)
    assert spool.fsyncs < 20  # 200 records arriving together: a handful of group commits
    assert spool.stats()["records_per_fsync"] >= 10
    reader = SpoolReader(tmp_path)
    records, position = reader.read(0, max_records=1000)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(200)]
    assert position == spool.durable_end == reader.durable_end
    reader.close()


def test_the_reader_sees_only_what_the_edge_fsynced(tmp_path, spool):
    write_many(spool, 2)
    reader = SpoolReader(tmp_path)
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as handle:  # written, not yet covered by an fsync the edge published
        handle.write(encode_frame(record_of(7)))
    records, position = reader.read(0)
    assert [r["request_id"] for r in records] == ["r0", "r1"] and position == spool.durable_end
    assert reader.read(position) == ([], position)
    reader.close()


def test_a_restarted_edge_keeps_what_its_predecessor_wrote(tmp_path, spool, spools, read_ids):
    write_many(spool, 2)
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as handle:  # a whole frame the killed process wrote but never fsynced
        handle.write(encode_frame(record_of(2)))
    spools()  # fsyncs it and publishes the new durable end
    assert read_ids() == ["r0", "r1", "r2"]


def test_max_batch_one_is_one_fsync_per_record(spools):
    spool = spools(max_batch=1)
    write_many(spool, 20)
    assert spool.fsyncs == 20


def test_callers_are_released_only_after_their_fsync(monkeypatch, spool):
    synced: list[int] = []
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd):  # the frames' sync (os.fsync only makes the zeros filled ahead durable)
        real_fdatasync(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)

    async def main():
        await spool.record(record_of(1))
        return len(synced)

    assert run_async(main) >= 1


def test_segments_rotate_and_release_deletes_consumed_ones(tmp_path, spools):
    spool = spools(segment_bytes=200)
    for _ in range(6):
        write_many(spool, 2)
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
    write_many(spool, 2)  # the edge goes on appending to the segment it kept
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
