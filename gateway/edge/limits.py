"""Rate limits per client and route: token buckets, in memory (embedded, one process) or in
Redis (production, shared by every gateway process).

A policy is ``{"rate": <tokens per second>, "burst": <bucket size>}``. The key is the
policy, the route pattern and the client: the token's ``client_id`` when the route needed a
token, else the client address the boundary resolved.

Policy when Redis fails: **fail open**. A limit protects capacity; refusing every request
because the limit store is down would turn a Redis outage into a full outage, while
authentication and audit (which are about who did what) stay fail-closed. Each request let
through this way is counted in ``xsn_gateway_ratelimit_storage_failures_total`` and logged
(at most once a second per process).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import structlog
from prometheus_client import Counter

log = structlog.get_logger("xsn.gateway.limits")
STORAGE_FAILURES = Counter("xsn_gateway_ratelimit_storage_failures_total",
                           "requests let through because the rate-limit store failed")


@dataclass(frozen=True)
class Policy:
    rate: float  # tokens added per second
    burst: int  # bucket size

    @classmethod
    def parse(cls, raw: Any) -> Policy:
        """``{"rate": 10, "burst": 20}`` or ``"10/s burst 20"``-free shorthand ``"600/minute"``."""
        if isinstance(raw, Mapping):
            return cls(rate=float(raw["rate"]), burst=int(raw.get("burst") or max(1, math.ceil(float(raw["rate"])))))
        count, _, period = str(raw).partition("/")
        seconds = {"second": 1, "s": 1, "minute": 60, "min": 60, "hour": 3600, "h": 3600}[period.strip() or "second"]
        return cls(rate=float(count) / seconds, burst=int(count))


class Decision(NamedTuple):
    """One request's verdict (a named tuple: made on every request, where a frozen dataclass's
    ``__init__`` cost more than the bucket arithmetic)."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one more request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.retry_after_s))
        return headers


def _decide(tokens: float, policy: Policy, allowed: bool) -> Decision:
    missing = policy.burst - tokens
    reset = math.ceil(missing / policy.rate) if policy.rate > 0 else 0
    retry = 0 if allowed else math.ceil((1 - tokens) / policy.rate) if policy.rate > 0 else 3600
    return Decision(allowed=allowed, limit=policy.burst, remaining=max(0, int(tokens)), reset_s=max(0, reset),
                    retry_after_s=retry)


class Limiter(Protocol):
    async def take(self, key: str, policy: Policy) -> Decision: ...


class MemoryLimiter:
    """Buckets in this process: right when one process serves (the embedded run)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self.buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, policy: Policy) -> Decision:
        now = self.clock()
        tokens, last = self.buckets.get(key, (float(policy.burst), now))
        tokens = min(float(policy.burst), tokens + (now - last) * policy.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self.buckets) >= self.max_keys and key not in self.buckets:
            self._evict_full(now)
        self.buckets[key] = (tokens, now)
        return _decide(tokens, policy, allowed)

    def _evict_full(self, now: float) -> None:
        """Drop buckets idle long enough to be full: forgetting them changes nothing."""
        self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 3600}
        if len(self.buckets) >= self.max_keys:
            self.buckets.clear()


# KEYS[1] bucket; ARGV rate, burst, now (s). Returns {allowed, tokens*1000}. One round trip,
# atomic in Redis, so every gateway process draws from the same bucket.
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 't', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, math.floor(tokens * 1000)}
"""


class RedisLimiter:
    """Buckets in Redis (``redis.asyncio``), fail-open on any Redis error (see the module)."""

    def __init__(self, client, *, prefix: str = "xsn:gw:rl:", clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self.script = client.register_script(_BUCKET_LUA)
        self._last_log = 0.0

    async def take(self, key: str, policy: Policy) -> Decision:
        try:
            allowed, milli = await self.script(keys=[self.prefix + key],
                                               args=[policy.rate, policy.burst, f"{self.clock():.6f}"])
        except Exception as exc:  # fail open by policy (module docstring), visibly
            STORAGE_FAILURES.inc()
            now = time.monotonic()
            if now - self._last_log > 1.0:
                self._last_log = now
                log.warning("ratelimit_storage_failed", error_type=type(exc).__name__)
            return Decision(allowed=True, limit=policy.burst, remaining=policy.burst, reset_s=0, retry_after_s=0)
        return _decide(int(milli) / 1000.0, policy, bool(int(allowed)))


class RateLimits:
    def __init__(self, limiter: Limiter, policies: Mapping[str, Policy], enabled: bool = True) -> None:
        if "default" not in policies:
            raise ValueError("a rate-limit policy named 'default' is required")
        self.limiter = limiter
        self.policies = dict(policies)
        self.enabled = enabled

    async def take(self, policy_name: str, route: str, who: str) -> Decision | None:
        """The decision for one request, or ``None`` when limits are off."""
        if not self.enabled:
            return None
        policy = self.policies.get(policy_name) or self.policies["default"]
        return await self.limiter.take(f"{policy_name}:{route}:{who}", policy)
