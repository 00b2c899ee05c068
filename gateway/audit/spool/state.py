"""What the edge and the audit writer process tell each other about one spool: a small shared file.

The edge appends to the spool and the writer (its own process, ``python -m gateway.audit_writer``)
moves the records into the database. They share ``state`` in the spool directory, mapped into
both processes (``mmap``, ``MAP_SHARED``), so telling costs no system call on the request path:

- ``durable_end`` (the edge): every byte before it is fsynced. The writer reads only up to it: a
  frame still in the page cache, not yet fsynced, could vanish in a power cut after the writer
  had moved it, and the edge would then write new records at positions the writer had passed.
- ``moved`` (the writer): every byte before it is in the database; the edge's backlog bound
  counts from it.
- the writer's heartbeat (wall-clock time of its last pass), its records moved and its last
  error: the edge's ``/readyz``.

A torn read of a word another process is writing would show a wrong value once; each field is
read until two reads agree. Nothing here needs to survive a crash: on open the edge sets
``durable_end`` from the segments themselves, and the writer sets ``moved`` from its position
in the database.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
DURABLE_END, MOVED, HEARTBEAT, MOVED_RECORDS, ERROR_LENGTH = 0, 8, 16, 24, 32
ERROR_TEXT, ERROR_MAX = 40, 216
SIZE = ERROR_TEXT + ERROR_MAX  # 256 bytes
FILE_NAME = "state"


class SpoolState:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = Path(directory) / FILE_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)  # zeros: nothing durable, nothing moved, no writer yet
            self._map = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)  # the mapping keeps the file

    def _read(self, layout: struct.Struct, offset: int):
        first = layout.unpack_from(self._map, offset)[0]
        while True:
            second = layout.unpack_from(self._map, offset)[0]
            if second == first:
                return first
            first = second

    # -- the edge writes -----------------------------------------------------------------------
    @property
    def durable_end(self) -> int:
        return self._read(_U64, DURABLE_END)

    @durable_end.setter
    def durable_end(self, value: int) -> None:
        _U64.pack_into(self._map, DURABLE_END, value)

    # -- the writer writes ---------------------------------------------------------------------
    @property
    def moved(self) -> int:
        return self._read(_U64, MOVED)

    @moved.setter
    def moved(self, value: int) -> None:
        _U64.pack_into(self._map, MOVED, value)

    def beat(self, moved_records: int, error: str | None) -> None:
        """The writer's pass ended (``error``: why it failed, ``None``: it worked)."""
        text = (error or "").encode()[:ERROR_MAX]
        self._map[ERROR_TEXT:ERROR_TEXT + len(text)] = text
        _U64.pack_into(self._map, ERROR_LENGTH, len(text))
        _U64.pack_into(self._map, MOVED_RECORDS, moved_records)
        _F64.pack_into(self._map, HEARTBEAT, time.time())

    def writer(self) -> dict:
        """``{"age_s": seconds since the writer's last pass (None: never), "moved": n, "error": str|None}``."""
        beat = self._read(_F64, HEARTBEAT)
        length = min(self._read(_U64, ERROR_LENGTH), ERROR_MAX)
        error = bytes(self._map[ERROR_TEXT:ERROR_TEXT + length]).decode(errors="replace") or None
        return {"age_s": round(time.time() - beat, 3) if beat else None,
                "moved": self._read(_U64, MOVED_RECORDS), "error": error}

    def close(self) -> None:
        self._map.close()
