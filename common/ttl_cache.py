"""A small in-process cache whose entries expire: one for every node's short-lived memo.

Entries last ``seconds`` from when they are put (``time.monotonic()``); when ``size`` entries
are held the next put empties the cache first (a clear costs each live key one more miss, and
keeps the cache bounded without per-read bookkeeping). Reads and forgets take no lock (one
``dict`` operation each: atomic under the GIL); puts do (the clear and the insert together).
What a caller must never cache (a failure, an invalid verdict) it simply does not put.

``cachetools.TTLCache`` was not used: it keeps an LRU list and a timer list up to date on every
read, which needs a lock around reads too, on paths (online verification) that read it on
every request.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, size: int) -> None:
        self.seconds, self.size = seconds, size
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value put for ``key`` less than ``seconds`` ago, else ``None``."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.seconds, value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
