"""Frames on disk: a torn or damaged tail is cut on reopen, zeros filled ahead are cut on a clean
close and stop a reader after a kill, damage before the end is corruption, and both encoders'
records read back the same.
"""

from __future__ import annotations

import errno
import math
import os

import pytest

from gateway.audit.spool.files import HEADER, SpoolCorrupt, encode_frame
from gateway.audit.spool.reader import SpoolReader
from tests.gateway.conftest import run_async
from tests.gateway.spool.support import abandon, ids_from, record_of, write_many


def test_torn_tail_is_cut_on_reopen(tmp_path, spool, spools, read_ids):
    write_many(spool, 3)
    end = spool.durable_end
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as handle:  # a crash half-way through writing the fourth frame
        handle.write(encode_frame(record_of(3))[:HEADER.size + 5])
    reopened = spools()
    assert reopened.durable_end == end
    assert segment.stat().st_size == end
    assert read_ids() == ["r0", "r1", "r2"]
    write_many(reopened, 1)  # appends after the cut, readable again
    assert read_ids() == ["r0", "r1", "r2", "r0"]


def test_bad_crc_in_the_tail_is_also_cut(tmp_path, spool, spools):
    write_many(spool, 2)
    end = spool.durable_end
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    frame = bytearray(encode_frame(record_of(9)))
    frame[-1] ^= 0xFF
    with open(segment, "ab") as handle:
        handle.write(bytes(frame))
    reopened = spools()
    assert reopened.durable_end == end


def test_frames_go_into_zeros_filled_ahead_and_a_clean_close_cuts_them(tmp_path, spool):
    write_many(spool, 3)
    segment = next(tmp_path.glob("*.seg"))
    assert segment.stat().st_size > spool.durable_end  # filled ahead: fdatasync flushes data only
    assert segment.read_bytes()[spool.durable_end:].count(0) == segment.stat().st_size - spool.durable_end
    reader = SpoolReader(tmp_path)
    assert ids_from(reader) == ["r0", "r1", "r2"]
    end = spool.durable_end
    spool.close()
    assert segment.stat().st_size == end
    reader.close()


def test_a_killed_edge_leaves_zeros_after_its_frames_and_nothing_is_lost_or_warned(monkeypatch, spool, spools,
                                                                                     read_ids):
    write_many(spool, 3)
    end = spool.durable_end
    abandon(spool)
    warnings = []
    monkeypatch.setattr("gateway.audit.spool.segment_writer.log.warning", lambda event, **kw: warnings.append(event))
    reopened = spools()
    assert reopened.durable_end == end and warnings == []
    write_many(reopened, 1)
    assert read_ids() == ["r0", "r1", "r2", "r0"]
    reopened.close()


def test_damaged_frame_before_the_end_is_corruption(tmp_path, spool):
    write_many(spool, 3)
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


def test_zeros_a_fill_left_past_what_it_kept_are_cut_on_close(tmp_path, monkeypatch, spool):
    real_pwrite = os.pwrite

    def filling_up(fd, data, offset):
        if len(data) > 64 * 1024:  # the zeros ahead: the first 100 KiB fit, then the disk is full
            if offset == 0:
                return real_pwrite(fd, bytes(data[:100 * 1024]), offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", filling_up)
    write_many(spool, 2)
    monkeypatch.undo()
    segment = next(tmp_path.glob("*.seg"))
    assert segment.stat().st_size == 100 * 1024 > spool.durable_end  # longer than the fill kept
    end = spool.durable_end
    spool.close()
    assert segment.stat().st_size == end


def test_a_disk_without_room_for_the_zeros_ahead_still_takes_the_frames(tmp_path, monkeypatch, spool, read_ids):
    real_pwrite = os.pwrite

    def small_disk(fd, data, offset):
        if len(data) > 64 * 1024:  # the zeros filled ahead do not fit; a batch of frames does
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", small_disk)
    write_many(spool, 3)
    write_many(spool, 2)
    monkeypatch.undo()
    segment = next(tmp_path.glob("*.seg"))
    assert segment.stat().st_size == spool.durable_end  # no zeros ahead: each batch filled only what it needed
    assert read_ids() == ["r0", "r1", "r2", "r0", "r1"]
