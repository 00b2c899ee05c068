"""One object per app and process, built on first use.

Why: a service's grouped writer (payment's ledger committer, the seal node's signature writer)
must be one per worker process, shared by the request threads of a gthread worker, and built
only once its app is configured; the threads' first requests race to build it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from flask import current_app

T = TypeVar("T")

_lock = threading.Lock()


def app_singleton(key: str, build: Callable[[], T]) -> T:
    """``current_app.extensions[key]``, built by ``build()`` the first time (once, under a lock)."""
    value = current_app.extensions.get(key)
    if value is None:
        with _lock:
            value = current_app.extensions.get(key)
            if value is None:
                value = current_app.extensions[key] = build()
    return value
