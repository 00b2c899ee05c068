"""The one TTL cache every node's short-lived memo uses (seal verdicts, verified codes, documents)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from common import ttl_cache
from common.ttl_cache import TtlCache


@pytest.fixture
def clock(monkeypatch):
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(ttl_cache, "time", SimpleNamespace(monotonic=lambda: clock.now))
    return clock


def test_an_entry_lasts_its_seconds_from_when_it_was_put(clock):
    cache: TtlCache[str, int] = TtlCache(seconds=60.0, size=10)
    assert cache.get("a") is None
    cache.put("a", 1)
    clock.now += 59.9
    assert cache.get("a") == 1
    cache.put("b", 2)  # b's minute starts now
    clock.now += 0.1
    assert cache.get("a") is None and cache.get("b") == 2
    cache.put("a", 3)  # an expired key is simply put again
    assert cache.get("a") == 3


def test_zero_seconds_caches_nothing(clock):
    cache: TtlCache[str, int] = TtlCache(seconds=0.0, size=10)
    cache.put("a", 1)
    assert cache.get("a") is None


def test_the_put_that_finds_it_full_empties_it_first(clock):
    cache: TtlCache[int, str] = TtlCache(seconds=60.0, size=3)
    for key in range(3):
        cache.put(key, str(key))
    assert [cache.get(k) for k in range(3)] == ["0", "1", "2"]
    cache.put(3, "3")
    assert [cache.get(k) for k in range(4)] == [None, None, None, "3"]


def test_a_forgotten_key_is_gone_and_forgetting_an_unknown_one_is_nothing(clock):
    cache: TtlCache[str, int] = TtlCache(seconds=60.0, size=10)
    cache.put("a", 1)
    cache.forget("a")
    cache.forget("never")
    assert cache.get("a") is None
