"""The writer's side of an audit spool: read what the edge made durable, release what reached the database.

Runs in the writer process (``python -m gateway.audit_writer``), never in the edge. It reads
the segment files up to the ``durable_end`` the edge publishes in the shared state (never a
frame that is not fsynced yet), and after the writer's commit publishes ``moved`` (the edge's
backlog counts from it) and deletes segments wholly before it. The edge never deletes
segments and the reader never deletes the newest one (the one the edge appends to).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.audit.spool.files import (
    MAX_FRAME,
    READ_BYTES_PER_RECORD,
    SpoolCorrupt,
    decode_frames,
    fsync_dir,
    lock_exclusively,
    read_or_create_id,
    segment_path,
    segment_starts,
)
from gateway.audit.spool.state import SpoolState


class SpoolReader:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_exclusively(self.directory / "writer.lock", "writer process")
        self.spool_id = read_or_create_id(self.directory)
        self.shared = SpoolState(self.directory)

    @property
    def durable_end(self) -> int:
        return self.shared.durable_end

    def first_position(self) -> int:
        starts = segment_starts(self.directory)
        return starts[0] if starts else 0

    def read(self, position: int, *, max_records: int = 1000) -> tuple[list[dict[str, Any]], int]:
        """Durable records from ``position`` on: ``(records, position after the last one)``.

        :raise SpoolCorrupt: ``position`` is before the spool's oldest segment (records lost) or
            a frame before the durable end does not check.
        """
        durable_end = self.shared.durable_end
        if position >= durable_end:
            # Nothing new, or the edge has not published its end since it (re)opened the spool.
            return [], position
        segments = segment_starts(self.directory)
        if not segments or position < segments[0]:
            raise SpoolCorrupt(f"position {position} is before the spool's oldest segment {segments[:1]}")
        records: list[dict[str, Any]] = []
        for i, start in enumerate(segments):
            end = min(segments[i + 1], durable_end) if i + 1 < len(segments) else durable_end
            if position >= end or len(records) >= max_records:
                continue
            with open(segment_path(self.directory, start), "rb") as handle:
                while position < end and len(records) < max_records:
                    room = max_records - len(records)
                    # Read about what the batch needs, not the whole segment; a frame cut by the
                    # chunk's end is read again whole with the next chunk.
                    handle.seek(position - start)
                    data = handle.read(min(end - position, max(room * READ_BYTES_PER_RECORD, MAX_FRAME)))
                    frames, used = decode_frames(data, room)
                    for record, length in frames:
                        records.append(record)
                        position += length
                    if not frames and (len(data) >= MAX_FRAME or position + len(data) >= end):
                        raise SpoolCorrupt(f"a damaged frame at position {position} in segment {start}")
        return records, position

    def release(self, position: int) -> None:
        """Everything before ``position`` is in the database: tell the edge, drop the segments wholly before it."""
        self.shared.moved = max(self.shared.moved, position)
        segments = segment_starts(self.directory)
        doomed = [s for i, s in enumerate(segments[:-1]) if segments[i + 1] <= position]
        for start in doomed:
            segment_path(self.directory, start).unlink(missing_ok=True)
        if doomed:
            fsync_dir(self.directory)

    def close(self) -> None:
        self.shared.close()
        os.close(self._lock_fd)
