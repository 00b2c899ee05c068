"""Rate limits on the ``limits`` library (the engine flask-limiter is built on; flask-limiter
itself is not used).

Each app gets its own storage (Redis from ``REDIS_URL``, memory otherwise) rather than
flask-limiter's one module-level ``Limiter``: several apps live in one test process, and
domain code needs limits keyed by account as well as by route. The policy is fail-open:
if Redis is down a request is let through and the failure is counted in a metric, while
authentication itself stays fail-closed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import structlog
from flask import Flask, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from common.errors import Problem
from common.web.context import current_app_object

log = structlog.get_logger("xsn.ratelimit")
STORAGE_FAILURES = Counter("xsn_ratelimit_storage_failures_total", "rate-limit checks let through on storage errors",
                           registry=None)


class RateLimited(Problem):
    status, code, title = 429, "rate_limited", "Too many requests"


class RateLimits:
    def __init__(self, storage_uri: str, enabled: bool = True) -> None:
        self.storage = storage_from_string(storage_uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.enabled = enabled
        self._items: dict[str, RateLimitItem] = {}

    def item(self, limit: str) -> RateLimitItem:
        """``limit`` (e.g. ``"5/minute"``) parsed once: the parser's regular expressions cost
        more than a memory-storage check."""
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = parse(limit)
        return item

    def hit(self, key: str, limit: str) -> bool:
        """Count one event under ``key``; False when the limit is exceeded."""
        return self._fail_open(self.limiter.hit, key, limit)

    def allows(self, key: str, limit: str) -> bool:
        """Whether one more event under ``key`` would be within ``limit``, without counting it
        (for limits on failures, counted only once the outcome is known). Fail-open like hit()."""
        return self._fail_open(self.limiter.test, key, limit)

    def _fail_open(self, ask: Callable[[RateLimitItem, str], bool], key: str, limit: str) -> bool:
        if not self.enabled:
            return True
        item = self.item(limit)  # a malformed limit is a bug, not a storage failure: raise
        try:
            return ask(item, key)
        except Exception as exc:  # fail-open by policy, but visibly
            STORAGE_FAILURES.inc()
            log.warning("ratelimit_storage_failed", error_type=type(exc).__name__)
            return True

    def check(self, key: str, limit: str) -> None:
        """:raise RateLimited: ``key`` exceeded ``limit`` (e.g. ``"5/minute"``)."""
        if not self.hit(key, limit):
            raise RateLimited(f"too many requests; limit {limit}", retry_after=self.item(limit).get_expiry())

    def reset(self, key: str, limit: str) -> None:
        try:
            self.limiter.clear(self.item(limit), key)
        except Exception as exc:
            log.warning("ratelimit_reset_failed", error_type=type(exc).__name__)


def get_limits() -> RateLimits:
    return current_app_object().extensions["xsn_ratelimits"]


def rate_limit(limit: str, key: Callable[[], str] | None = None, scope: str | None = None):
    """View decorator: at most ``limit`` requests per client IP (or per ``key()``)."""

    def decorator(view):
        name = scope or view.__qualname__

        @wraps(view)
        def wrapper(*args, **kwargs):
            who = key() if key else (request.remote_addr or "unknown")
            get_limits().check(f"{name}:{who}", limit)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def init_app(app: Flask) -> None:
    uri = app.config.get("REDIS_URL") or "memory://"
    app.extensions["xsn_ratelimits"] = RateLimits(uri, enabled=bool(app.config.get("RATELIMIT_ENABLED", True)))
