"""Token buckets in memory and in Redis; Redis down fails open, counted."""

from __future__ import annotations

import pytest

from gateway.edge.limits import STORAGE_FAILURES, MemoryLimiter, Policy, RateLimits, RedisLimiter
from tests.gateway.conftest import run_async


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_policy_parsing():
    assert Policy.parse({"rate": 2, "burst": 5}) == Policy(2.0, 5)
    assert Policy.parse("600/minute") == Policy(10.0, 600)


def test_memory_bucket_refills_at_its_rate():
    clock = Clock()
    limiter = MemoryLimiter(clock)
    policy = Policy(rate=1.0, burst=2)
    take = lambda: run_async(limiter.take("k", policy))  # noqa: E731
    first, second, third = take(), take(), take()
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert third.retry_after_s == 1 and third.headers()["Retry-After"] == "1"
    assert first.headers()["RateLimit-Remaining"] == "1"
    clock.now += 1.0
    assert take().allowed and not take().allowed


def test_keys_are_per_policy_route_and_client():
    limits = RateLimits(MemoryLimiter(Clock()), {"default": Policy(0.001, 1)})
    run = run_async
    assert run(limits.take("default", "/a", "ip:1")).allowed
    assert not run(limits.take("default", "/a", "ip:1")).allowed
    assert run(limits.take("default", "/b", "ip:1")).allowed
    assert run(limits.take("default", "/a", "ip:2")).allowed
    assert run(limits.take("unknown-policy", "/a", "ip:3")).allowed  # falls back to default
    assert run(RateLimits(MemoryLimiter(), {"default": Policy(1, 1)}, enabled=False).take("default", "/", "x")) is None


def test_redis_down_fails_open_and_is_counted():
    import redis.asyncio as redis

    async def scenario():
        client = redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            return await RedisLimiter(client).take("k", Policy(1, 1))
        finally:
            await client.aclose()

    from structlog.testing import capture_logs

    before = STORAGE_FAILURES._value.get()
    with capture_logs() as captured:
        decision = run_async(scenario())
    assert decision.allowed
    assert STORAGE_FAILURES._value.get() == before + 1
    # The type only (the project's convention): a Redis error's message may carry its URL.
    assert [(e["event"], sorted(e)) for e in captured] == [
        ("ratelimit_storage_failed", ["error_type", "event", "log_level"])]


@pytest.mark.services
def test_redis_bucket_is_shared(redis_url):
    import uuid

    import redis.asyncio as redis

    async def scenario():
        one, two = redis.from_url(redis_url), redis.from_url(redis_url)
        try:
            key, policy = f"test:{uuid.uuid4().hex}", Policy(rate=0.001, burst=2)
            first = await RedisLimiter(one).take(key, policy)
            second = await RedisLimiter(two).take(key, policy)  # another gateway process
            third = await RedisLimiter(one).take(key, policy)
            return first, second, third
        finally:
            await one.aclose()
            await two.aclose()

    first, second, third = run_async(scenario())
    assert first.allowed and second.allowed and not third.allowed
    assert third.retry_after_s >= 1 and second.remaining == 0
