"""Connections to the services: a pool of keep-alive connections per upstream
(``upstream_http``), bounded retries of idempotent methods, and a circuit breaker per upstream.

What the breaker counts as a failure: what it is for, the service not being reachable. That is
a transport failure: no connection, the connection reset or closed before the answer's head
arrived, no head within the route's timeout, an answer that is not HTTP/1.x, a body that
broke off. Every HTTP answer of the service is a success, whatever its status: the service is
reachable and has said what is wrong (a licences group commit that failed answers 503
``verification_write_failed`` to each of its ~6 requests at once, payment answers 503
``database_busy`` under load, the console's login pages answer 502/503/504 HTML pages while
identity's IdP is down; counting them would let anyone open the circuit for a whole service
with a few GETs of a public page). Nothing between the edge and a service answers for it in
this deployment, so an HTTP answer is always the service's own. nginx counts the same way by
default (``max_fails`` counts what ``proxy_next_upstream`` names: ``error timeout``, not
``http_503``).

One outage, one count: the requests in flight when a worker dies or a connection pool resets
all fail together from one cause. A failure counts when its request was sent after the last
counted failure was seen, or when it comes ``burst_s`` (0.1 s) or more after it; the rest of a
burst does not (it says nothing the first did not). A dead service still opens the breaker
after ``failures`` requests sent one after another (each fails at once). A hung one opens it
within ``(failures - 1) × burst_s`` of its first timeout only if its timeouts come at least
every ``burst_s`` (requests sent that often); sparser ones each count anyway, so it opens after
``failures`` of them. A request sent before the circuit opened says nothing once a probe has
closed it; the probe's own verdict is taken at its answer's head, and if its body then breaks
off before any newer request has been answered, the circuit opens again (once its body has
arrived whole, the verdict is final).

After ``failures`` consecutive failures the upstream is *open*: requests are answered 503
``upstream_circuit_open`` at once for ``open_s`` seconds; then it is *half-open*: one request
at a time goes through as a probe, and its success closes the breaker while its failure opens
it again.

Retries (idempotent methods only, ``retries`` extra attempts, all within the route's one
timeout; a POST is tried once, even when no connection was made): only a connection that could
not be made is tried again, and a request on a pooled connection that closed before any byte of
an answer arrived (the keep-alive race: the service had closed it as the request went out) once
more on a fresh one, uncounted. RFC 9110 §9.2.2 allows retrying an idempotent request when the
connection closed before any response, and Go's net/http does the same; the cost, accepted: a
service that died mid-request on a reused connection gets an idempotent request once more,
within the same one deadline. Nothing else is tried again: not a head cut short or over
``HEAD_LIMIT`` (an answer begun), not a timeout, not a fresh connection closed after the request
went out (a hung worker its server killed: the request may be running still), not an answer
that is not HTTP, not a body broken off, and never an HTTP answer (retrying a 503
``database_busy`` would triple the load on the busy database; retrying a login callback would
burn its single-use state). A deadline spent between attempts (a backoff after refused
connections) answers 502 as the last error would have, not 504: the service refused, it did not
hang. ``/readyz`` shows each upstream's breaker state, its count of consecutive failures and the
last ``/livez`` probe.
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
# Per attempt: a service not accepting within it is tried again if time is left and the method
# is idempotent (a POST is tried once: see the module).
CONNECT_TIMEOUT_S = 2.0


@dataclass
class Breaker:
    """Each request takes a ticket from :meth:`before` and hands it back with its verdict."""

    failures: int = 5
    open_s: float = 5.0
    burst_s: float = 0.1
    clock: Callable[[], float] = time.monotonic
    consecutive: int = 0
    opened_at: float | None = None
    probing: bool = False
    state: str = field(default="closed")  # closed | open | half_open
    # Counted failures and probe closings so far; a request's ticket is the epoch it was sent
    # in. Only the half-open probe holds the current epoch's ticket while the breaker is not closed.
    epoch: int = 0
    counted_at: float = float("-inf")  # when the last failure was counted
    closed_epoch: int = 0  # the epoch a probe last closed the breaker in: older tickets say nothing now
    # That probe's ticket, until its body arrived whole or broke off, or a newer request was
    # answered (the service is back then: a long stream of the probe's breaking off later is
    # judged as any old ticket).
    closer: int | None = None

    def before(self) -> int:
        """The request's ticket. :raise CircuitOpen: open, or half-open with a probe already in flight."""
        if self.state == "open":
            if self.clock() - (self.opened_at or 0.0) < self.open_s:
                raise CircuitOpen("the service is failing; try again shortly", headers={"Retry-After": "5"})
            self.state = "half_open"
        if self.state == "half_open":
            if self.probing:
                raise CircuitOpen("the service is failing; try again shortly", headers={"Retry-After": "5"})
            self.probing = True
        return self.epoch

    def success(self, ticket: int) -> None:
        if self.state != "closed" and ticket != self.epoch:
            return  # an answer to a request sent before the circuit opened: the probe decides
        if self.closer is not None and ticket > self.closer:
            self.closer = None
        if self.state != "closed":
            # The probe closes it: requests still in flight from before the circuit opened
            # must not open it again with their failures (they were sent to the broken service).
            self.closer = ticket
            self.epoch += 1
            self.closed_epoch = self.epoch
        self.consecutive, self.state, self.probing, self.opened_at = 0, "closed", False, None

    def failure(self, ticket: int) -> None:
        now = self.clock()
        if ticket == self.closer:
            # The probe's verdict was taken at its answer's head; its body broke off after all:
            # the service is not back, open the circuit again (unless something else already did).
            self.closer = None
            if self.state == "closed":
                self.consecutive += 1
                self._open(now)
            return
        if ticket < self.closed_epoch:
            return  # sent before the probe that closed the breaker: already judged
        if ticket != self.epoch and (self.state != "closed" or now - self.counted_at < self.burst_s):
            return  # the rest of a burst already counted, or a request from before the circuit opened
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.failures:
            self._open(now)
        else:
            self.epoch += 1
            self.counted_at = now

    def _open(self, now: float) -> None:
        self.epoch += 1
        self.counted_at = now
        self.probing = False
        if self.state != "open":
            log.warning("circuit_opened", failures=self.consecutive)
        self.state, self.opened_at = "open", now

    def release(self, ticket: int) -> None:
        """A request that ended without a verdict (the client went away): free the probe slot."""
        if ticket == self.epoch:
            self.probing = False


class Upstream:
    def __init__(self, name: str, base_url: str, *, connections: int = 256, retries: int = 2,
                 breaker: Breaker | None = None, unix_socket: str | None = None) -> None:
        self.name = name
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream {name}: only http://host:port URLs are supported, not {base_url!r}")
        self.base_path = parts.path.rstrip("/")
        self.pool = Pool(parts.hostname, parts.port or 80, size=connections, unix_socket=unix_socket)
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
        then ``release()``s it, and reports a body that broke off with :meth:`broke_off`).

        :raise CircuitOpen: the breaker is open. :raise UpstreamUnavailable: no connection, or
            it closed before an answer or broke HTTP (what is tried again: see the module).
            :raise UpstreamTimeout: no answer's head within ``timeout_s``, all attempts included.
        """
        ticket = self.breaker.before()
        try:
            response = await self._send(method, path_qs, headers, body, timeout_s, ticket)
        except BaseException:
            self.breaker.release(ticket)  # cancelled or failed: a half-open probe slot must not stay taken
            raise
        response.ticket = ticket
        return response

    def broke_off(self, response: Response) -> None:
        """The body of ``response`` broke off or timed out: a transport failure after all."""
        self.breaker.failure(response.ticket)

    async def _send(self, method: str, path_qs: str, headers: list[tuple[str, str]], body: bytes,
                    timeout_s: float, ticket: int) -> Response:
        # One deadline for every attempt: a hung service costs the client the route's timeout
        # once, not once per retry.
        # ``time.monotonic``, not the loop's clock: on Python 3.11 ``asyncio.get_running_loop()``
        # costs a ``getpid()`` system call, once per request here.
        deadline = time.monotonic() + timeout_s
        idempotent = method in IDEMPOTENT
        target = self.base_path + path_qs
        retried = 0
        fresh = False
        last: UpstreamError | None = None  # the error the next attempt is retrying
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and last is not None:
                # Out of time between attempts: the service refused (or closed a kept-alive
                # connection) rather than hung, so 502 as that error alone would have been,
                # counted only if it was (the keep-alive race is not).
                if not last.reused or last.answered:
                    self.breaker.failure(ticket)
                raise UpstreamUnavailable(f"{self.name} is not reachable") from last
            try:
                if remaining <= 0:
                    raise TimeoutError
                # ``timeout_s`` runs from the call: connecting and any 100 Continue come out of it
                # (the pool cuts the connect timeout to it).
                response = await self.pool.request(method, target, headers, body, timeout_s=remaining,
                                                   connect_timeout_s=CONNECT_TIMEOUT_S, fresh=fresh)
            except TimeoutError as exc:
                self.breaker.failure(ticket)
                raise UpstreamTimeout(f"{self.name} did not answer in time") from exc
            except UpstreamError as exc:
                if exc.reused and not exc.answered:
                    # A pooled connection the service had closed as it went out (the keep-alive
                    # race): not a failure of the service. Tried again on a fresh connection if
                    # idempotent; otherwise the client is told, and the ticket goes back uncounted
                    # (``send`` releases it).
                    if idempotent:
                        fresh, last = True, exc
                        continue
                    raise UpstreamUnavailable(f"{self.name} closed a kept-alive connection") from exc
                if not exc.sent and idempotent and retried < self.retries:
                    # Only a connection never made is tried again: a request that went out on a
                    # fresh connection may be running still (a hung worker its server killed).
                    retried, last = retried + 1, exc
                    await asyncio.sleep(min(0.05 * retried, max(0.0, deadline - time.monotonic())))
                    continue
                self.breaker.failure(ticket)
                log.warning("upstream_unavailable", upstream=self.name, error_type=type(exc).__name__)
                raise UpstreamUnavailable(f"{self.name} is not reachable") from exc
            self.breaker.success(ticket)  # any HTTP answer: the service is reachable (see the module)
            return response

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
        return {"state": self.breaker.state, "failures": self.breaker.consecutive, "healthy": self.healthy}
