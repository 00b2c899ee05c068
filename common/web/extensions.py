"""One object per app and process, built on first use.

Why: a service's grouped writer (payment's ledger committer, the seal node's signature writer)
must be one per worker process, shared by the request threads of a gthread worker, and built
only once its app is configured; the threads' first requests race to build it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from common.web.context import current_app_object

T = TypeVar("T")

_lock = threading.Lock()


def app_singleton(key: str, build: Callable[[], T]) -> T:
    """``current_app.extensions[key]``, built by ``build()`` the first time (once, under a lock)."""
    extensions = current_app_object().extensions  # called per request by the services' writers
    value = extensions.get(key)
    if value is None:
        with _lock:
            value = extensions.get(key)
            if value is None:
                value = extensions[key] = build()
    return value
