"""Connections to the services: a pool of keep-alive connections per upstream
(``upstream_http``), bounded retries of idempotent methods, and a circuit breaker per upstream.

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
from urllib.parse import urlsplit

import structlog

from gateway.edge.problems import CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from gateway.edge.upstream_http import Pool, Response, UpstreamError

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
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream {name}: only http://host:port URLs are supported, not {base_url!r}")
        self.base_path = parts.path.rstrip("/")
        self.pool = Pool(parts.hostname, parts.port or 80, size=connections)
        self.retries = retries
        self.breaker = breaker or Breaker()
        self.healthy: bool | None = None  # last health probe; None before the first

    def start(self) -> None:
        pass  # connections are made on demand

    async def close(self) -> None:
        self.pool.close()

    async def send(self, method: str, path_qs: str, headers: list[tuple[str, str]], body: bytes,
                   timeout_s: float) -> Response:
        """The service's response, head read, body not yet (the caller reads or streams it,
        then ``release()``s it).

        :raise CircuitOpen: the breaker is open. :raise UpstreamUnavailable: no connection
            (after retries for idempotent methods). :raise UpstreamTimeout: no answer in time.
        """
        self.breaker.before()
        try:
            return await self._send(method, path_qs, headers, body, timeout_s)
        except BaseException:
            self.breaker.release()  # cancelled or failed: a half-open probe slot must not stay taken
            raise

    async def _send(self, method: str, path_qs: str, headers: list[tuple[str, str]], body: bytes,
                    timeout_s: float) -> Response:
        idempotent = method in IDEMPOTENT
        attempts = 1 + (self.retries if idempotent else 0)
        target = self.base_path + path_qs
        fresh = False
        for attempt in range(attempts + 1):
            try:
                response = await self.pool.request(method, target, headers, body, timeout_s=timeout_s, fresh=fresh)
            except TimeoutError as exc:
                self.breaker.failure()
                raise UpstreamTimeout(f"{self.name} did not answer in time") from exc
            except UpstreamError as exc:
                if exc.reused and not exc.answered and idempotent:
                    fresh = True  # a pooled connection the service had closed: not a failure of the service
                    continue
                if attempt + 1 < attempts and not exc.answered:
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                self.breaker.failure()
                log.warning("upstream_unavailable", upstream=self.name, error=str(exc)[:200])
                raise UpstreamUnavailable(f"{self.name} is not reachable") from exc
            if response.status in FAILURE_STATUSES and idempotent and attempt + 1 < attempts:
                response.release()
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            if response.status in FAILURE_STATUSES:
                self.breaker.failure()
            else:
                self.breaker.success()
            return response
        self.breaker.failure()
        raise UpstreamUnavailable(f"{self.name} is not reachable")

    async def probe(self, timeout_s: float = 2.0) -> bool:
        """``GET /livez`` of the service, for ``/readyz`` (not counted by the breaker)."""
        try:
            response = await self.pool.request("GET", self.base_path + "/livez", [], b"", timeout_s=timeout_s)
            try:
                await response.read(timeout_s)
            finally:
                response.release()
            self.healthy = response.status == 200
        except (UpstreamError, TimeoutError):
            self.healthy = False
        return self.healthy

    def health(self) -> dict:
        return {"state": self.breaker.state, "healthy": self.healthy}
