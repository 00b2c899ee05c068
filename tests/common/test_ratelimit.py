"""common.web.ratelimit: counting, testing without counting, and failing open visibly."""

from __future__ import annotations

import pytest

from common.web.ratelimit import STORAGE_FAILURES, RateLimited, RateLimits


def test_allows_does_not_count_and_hit_does():
    limits = RateLimits("memory://")
    assert all(limits.allows("k", "2/minute") for _ in range(5))  # testing spends nothing
    assert limits.hit("k", "2/minute") and limits.hit("k", "2/minute")
    assert not limits.allows("k", "2/minute") and not limits.hit("k", "2/minute")
    with pytest.raises(RateLimited):
        limits.check("k", "2/minute")
    assert limits.allows("other", "2/minute")


def test_a_storage_failure_lets_through_and_is_counted(monkeypatch):
    limits = RateLimits("memory://")

    def broken(*_args):
        raise ConnectionError("redis down")

    monkeypatch.setattr(limits.limiter, "test", broken)
    monkeypatch.setattr(limits.limiter, "hit", broken)
    before = STORAGE_FAILURES._value.get()
    assert limits.allows("k", "1/minute") and limits.hit("k", "1/minute")
    assert STORAGE_FAILURES._value.get() == before + 2


def test_disabled_limits_allow_everything():
    limits = RateLimits("memory://", enabled=False)
    assert all(limits.hit("k", "1/minute") for _ in range(3)) and limits.allows("k", "1/minute")


def test_a_storage_failure_logs_the_error_type_never_its_message(monkeypatch):
    # A storage error's message may carry a key (a client, an account) or the storage URL.
    from structlog.testing import capture_logs

    limits = RateLimits("memory://")

    def broken(*_args):
        raise ConnectionError("redis://:s3cret@cache:6379 refused key login:13800138000")

    for name in ("test", "hit", "clear"):
        monkeypatch.setattr(limits.limiter, name, broken)
    with capture_logs() as captured:
        limits.allows("k", "1/minute")
        limits.hit("k", "1/minute")
        limits.reset("k", "1/minute")
    assert [(e["event"], e["error_type"]) for e in captured] == [
        ("ratelimit_storage_failed", "ConnectionError"), ("ratelimit_storage_failed", "ConnectionError"),
        ("ratelimit_reset_failed", "ConnectionError")]
    assert not [e for e in captured if "s3cret" in repr(e) or "13800138000" in repr(e)]
