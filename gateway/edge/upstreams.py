"""Connections to the services: a pooled keep-alive client per upstream, bounded retries of
idempotent methods, and a circuit breaker per upstream.

Breaker: after ``failures`` consecutive failures (no connection, timeout, or a 502/503/504
from the service) the upstream is *open* and requests are answered 503 at once for
``open_s`` seconds; then it is *half-open*: one request at a time goes through as a probe,
and its success closes the breaker while its failure opens it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import structlog

from gateway.edge.problems import CircuitOpen, UpstreamTimeout, UpstreamUnavailable

log = structlog.get_logger("xsn.gateway.upstreams")
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
FAILURE_STATUSES = frozenset({502, 503, 504})


@dataclass
class Breaker:
    failures: int = 5
    open_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    consecutive: int = 0
    opened_at: float | None = None
    probing: bool = False
    state: str = field(default="closed")  # closed | open | half_open

    def before(self) -> None:
        """:raise CircuitOpen: open, or half-open with a probe already in flight."""
        if self.state == "open":
            if self.clock() - (self.opened_at or 0.0) < self.open_s:
                raise CircuitOpen("the service is failing; try again shortly", headers={"Retry-After": "5"})
            self.state = "half_open"
        if self.state == "half_open":
            if self.probing:
                raise CircuitOpen("the service is failing; try again shortly", headers={"Retry-After": "5"})
            self.probing = True

    def success(self) -> None:
        self.consecutive, self.state, self.probing, self.opened_at = 0, "closed", False, None

    def failure(self) -> None:
        self.consecutive += 1
        self.probing = False
        if self.state == "half_open" or self.consecutive >= self.failures:
            if self.state != "open":
                log.warning("circuit_opened", failures=self.consecutive)
            self.state, self.opened_at = "open", self.clock()

    def release(self) -> None:
        """A request that ended without a verdict (the client went away): free the probe slot."""
        self.probing = False


class Upstream:
    def __init__(self, name: str, base_url: str, *, connections: int = 256, retries: int = 2,
                 breaker: Breaker | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.breaker = breaker or Breaker()
        self.connections = connections
        self.session: aiohttp.ClientSession | None = None
        self.healthy: bool | None = None  # last health probe; None before the first

    def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=30, ttl_dns_cache=300,
                                         enable_cleanup_closed=False)
        # No cookie jar: one client serves every browser; no decompression: bytes pass as sent.
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                             auto_decompress=False, skip_auto_headers=("User-Agent",),
                                             timeout=aiohttp.ClientTimeout(total=None))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, method: str, path_qs: str, headers: list[tuple[str, str]], body: bytes,
                   timeout_s: float) -> aiohttp.ClientResponse:
        """The service's response, headers read, body not yet (the caller streams and releases it).

        :raise CircuitOpen: the breaker is open. :raise UpstreamUnavailable: no connection
            (after retries for idempotent methods). :raise UpstreamTimeout: no answer in time.
        """
        assert self.session is not None, "start() first"
        self.breaker.before()
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        url = self.base_url + path_qs
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(2.0, timeout_s), sock_read=timeout_s)
        for attempt in range(attempts):
            try:
                response = await self.session.request(method, url, headers=headers, data=body or None,
                                                      allow_redirects=False, timeout=timeout, compress=False,
                                                      skip_auto_headers=("Content-Type", "Accept-Encoding", "Accept"))
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                self.breaker.failure()
                raise UpstreamTimeout(f"{self.name} did not answer in time") from exc
            except aiohttp.ClientError as exc:
                # A pooled connection the service closed, or no connection at all.
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                self.breaker.failure()
                log.warning("upstream_unavailable", upstream=self.name, error=str(exc)[:200])
                raise UpstreamUnavailable(f"{self.name} is not reachable") from exc
            if response.status in FAILURE_STATUSES and method in IDEMPOTENT and attempt + 1 < attempts:
                response.release()
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            if response.status in FAILURE_STATUSES:
                self.breaker.failure()
            else:
                self.breaker.success()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def probe(self, timeout_s: float = 2.0) -> bool:
        """``GET /livez`` of the service, for ``/readyz`` (not counted by the breaker)."""
        assert self.session is not None
        try:
            async with self.session.get(self.base_url + "/livez", timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
                self.healthy = r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            self.healthy = False
        return self.healthy

    def health(self) -> dict:
        return {"state": self.breaker.state, "healthy": self.healthy}
