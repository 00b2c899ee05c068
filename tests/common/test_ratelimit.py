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
