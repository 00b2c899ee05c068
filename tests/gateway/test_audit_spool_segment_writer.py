"""The spool's segment writer on its own, without the spool's thread or loop: positions,
zeros filled ahead, rotation, reopening."""

from __future__ import annotations

import errno

import pytest

from gateway.audit.spool.files import decode_frames, encode_frame, segment_path, segment_starts
from gateway.audit.spool.segment_writer import PREFILL_BYTES, SegmentWriter


def _frames(*ids: str) -> list[bytes]:
    return [encode_frame({"request_id": i, "status": 200}) for i in ids]


def test_writes_return_the_global_durable_end_and_rotate_past_the_segment_size(tmp_path):
    writer = SegmentWriter(tmp_path, segment_bytes=100)
    first = writer.write(_frames("a", "b", "c"))  # past 100 bytes: the next write starts a segment
    assert first == writer.durable_end == sum(map(len, _frames("a", "b", "c")))
    assert segment_path(tmp_path, 0).stat().st_size == PREFILL_BYTES  # zeros ahead of the frames
    second = writer.write(_frames("d"))
    assert segment_starts(tmp_path) == [0, first]  # named by the global position of its first frame
    assert segment_path(tmp_path, 0).stat().st_size == first  # sealed: its zeros cut
    assert second == first + len(_frames("d")[0]) and writer.segment_start == first
    assert (writer.fsyncs, writer.records_synced) == (2, 4)
    writer.close()
    frames, used = decode_frames(segment_path(tmp_path, first).read_bytes())
    assert [f["request_id"] for f, _ in frames] == ["d"] and used == second - first


def test_reopened_it_goes_on_after_the_last_frame(tmp_path):
    writer = SegmentWriter(tmp_path, segment_bytes=1 << 20)
    end = writer.write(_frames("a", "b"))
    writer.close()
    again = SegmentWriter(tmp_path, segment_bytes=1 << 20)
    assert (again.durable_end, again.oldest_start, again.broken) == (end, 0, False)
    again.write(_frames("c"))
    again.close()
    frames, _ = decode_frames(segment_path(tmp_path, 0).read_bytes())
    assert [f["request_id"] for f, _ in frames] == ["a", "b", "c"]


def test_once_broken_it_writes_nothing_more(tmp_path, monkeypatch):
    """A failed batch that could be neither zeroed nor cut leaves half a frame: a batch written
    after it (one accepted before the loop saw ``broken``) would be acknowledged, then cut off
    with the torn frame on reopen. It is refused instead, and the file is left as it was."""
    from gateway.audit.spool import segment_writer

    writer = SegmentWriter(tmp_path, segment_bytes=1 << 20)
    end = writer.write(_frames("a"))

    def fail(*_args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(segment_writer, "datasync", fail)
    monkeypatch.setattr(segment_writer.os, "ftruncate", fail)
    with pytest.raises(OSError):
        writer.write(_frames("b"))
    monkeypatch.undo()
    assert writer.broken
    before = segment_path(tmp_path, 0).read_bytes()
    with pytest.raises(OSError, match="reopen"):
        writer.write(_frames("c"))
    assert writer.durable_end == end
    assert segment_path(tmp_path, 0).read_bytes() == before
    writer.close()


def test_a_failed_undo_logs_the_disk_error_s_errno_and_strerror_not_its_message(tmp_path, monkeypatch):
    # What the operator must mend (ENOSPC, EIO) is kept as its own fields; the message, which
    # may name a file or carry anything else, is not logged (the project's error_type convention).
    from structlog.testing import capture_logs

    from gateway.audit.spool import segment_writer

    writer = SegmentWriter(tmp_path, segment_bytes=1 << 20)
    writer.write(_frames("a"))

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/spool/secret-name")

    monkeypatch.setattr(segment_writer, "datasync", full)
    monkeypatch.setattr(segment_writer.os, "ftruncate", full)
    with capture_logs() as captured, pytest.raises(OSError):
        writer.write(_frames("b"))
    monkeypatch.undo()
    assert [(e["event"], e["error_type"], e["errno"], e["strerror"]) for e in captured] == [
        ("audit_spool_zeroing_failed", "OSError", errno.ENOSPC, "No space left on device"),
        ("audit_spool_broken", "OSError", errno.ENOSPC, "No space left on device")]
    assert "secret-name" not in repr(captured)
    writer.close()
