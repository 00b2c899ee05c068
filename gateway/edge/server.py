"""The request path of the gateway: one ``Gateway.handle`` per request.

In order: the gateway's own endpoints (``/livez``, ``/readyz``, ``/metrics``); the ``Host``
(421 unless configured); the request's framing (smuggling shapes, 400); a browser's page on
an allowed host other than the public base URL's (307 there, ``Boundary.page_redirect``); the path (400 for
traversal); the route (404); the token and scopes (401/403); the rate limit (429); the body,
read whole within its timeout and limit (408/413); then the service over a pooled
connection (502/503/504 when it fails; ``upstreams`` says what its circuit breaker counts).
Every request through a route, and every error the gateway itself answers, leaves one audit
record before its response completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_exceptions import HTTPException
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from common.errors import traceback_without_messages
from common.request_ids import REQUEST_ID_RE, new_request_id
from gateway.edge import cors
from gateway.edge.audit_sink import AuditSink
from gateway.edge.boundary import Boundary, caller_headers, forwarding_headers, response_headers, upstream_headers
from gateway.edge.exchange import Exchange
from gateway.edge.limits import RateLimits
from gateway.edge.paths import check_path
from gateway.edge.problems import (
    AuditUnavailable,
    CorsRefused,
    EdgeProblem,
    InternalError,
    MalformedRequest,
    MethodNotAllowed,
    NoRoute,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    UpstreamUnavailable,
    outcome_of,
    problem_body,
    problem_headers,
)
from gateway.edge.protocol import StreamedResponse, WholeResponse, check_framing, raw_problem_response
from gateway.edge.routing import FORWARDED_METHODS, Match, RouteTable, Service
from gateway.edge.tokens import AccessTokens, bearer, check_scopes
from gateway.edge.upstream_http import Response, UpstreamError
from gateway.edge.upstreams import Upstream

log = structlog.get_logger("xsn.gateway")
BUFFER_LIMIT = 256 * 1024  # responses up to this size (with a length) are read whole; larger stream
# The gateway's own documents at the root, as every service has them, served by its admin app.
ROOT_ALIASES = frozenset({"/info", "/openapi.json", "/docs"})
AUDIT_PAUSE_S = 1.0  # after a failed audit write, refuse to forward for this long before trying again
REQUESTS = Counter("xsn_gateway_requests_total", "requests answered by the gateway", ["route", "status", "outcome"])
LATENCY = Histogram("xsn_gateway_request_duration_seconds", "time to answer, upstream included", ["route"])
AUDIT_FAILURES = Counter("xsn_gateway_audit_failures_total", "audit records the sink refused")
RESOLVED_MAX = 4096  # (path, method) pairs whose route is remembered; the table is static


class Gateway:
    def __init__(self, *, routes: RouteTable, boundary: Boundary, tokens: AccessTokens, limits: RateLimits,
                 upstreams: dict[str, Upstream], sink: AuditSink, body_timeout_s: float = 30.0,
                 revocation_max_age_s: float = 5.0) -> None:
        self.routes = routes
        self.boundary = boundary
        self.tokens = tokens
        self.limits = limits
        self.upstreams = upstreams
        self.sink = sink
        self.body_timeout_s = body_timeout_s
        self.revocation_max_age_s = revocation_max_age_s
        self.audit_down_until = 0.0
        self.server = None  # the EdgeServer, for /readyz
        self._background: set[asyncio.Task] = set()
        # (path, method) -> its Match: the path checked, the route found, once (bounded: paths
        # carry ids). Only what passed is kept; a refused path is checked again each time.
        self._resolved: dict[tuple[str, str], Match] = {}
        # Metric children by label values: ``labels()`` costs a lock and a lookup per call.
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    # -- the request path --------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse | WholeResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        if raw_path in ("/livez", "/readyz", "/metrics") and request.method in ("GET", "HEAD"):
            return self._local(raw_path)
        if raw_path in ROOT_ALIASES:
            raw_path = "/gateway" + raw_path
        incoming_id = request.headers.get("X-Request-ID", "")
        exchange = Exchange(request_id=incoming_id if REQUEST_ID_RE.match(incoming_id) else new_request_id(),
                            source=request.remote or "", method=request.method, path=raw_path[:1024])
        try:
            if self.boundary.trusted_proxies:
                exchange.source = self.boundary.client_address(exchange.source,
                                                               request.headers.getall("X-Forwarded-For", []))
            return await self._forward(request, exchange)
        except EdgeProblem as problem:
            return await self._problem_response(request, exchange, problem)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except HTTPException:
            raise
        except Exception as exc:
            log.error("gateway_internal_error", request_id=exchange.request_id, error_type=type(exc).__name__,
                      traceback=traceback_without_messages(exc))
            return await self._problem_response(request, exchange, InternalError("the gateway failed"))

    async def _forward(self, request: web.BaseRequest, exchange: Exchange) -> web.StreamResponse | WholeResponse:
        headers = request.headers
        hosts = headers.getall("Host", [])
        if len(hosts) > 1:
            raise MalformedRequest("more than one Host header")
        self.boundary.check_host(hosts[0] if hosts else None)
        check_framing(headers)
        moved = self.boundary.page_redirect(hosts[0], request.method, request.raw_path, headers)
        if moved is not None:
            check_path(exchange.path)  # what is not served here is not sent on either (400)
            exchange.status, exchange.reason = 307, "canonical_host"
            await self._audit(exchange)
            return WholeResponse(307, [("Location", moved), ("X-Request-ID", exchange.request_id)], b"")
        match = self._resolved.get((exchange.path, request.method))
        service = match.service if match is not None else self._service(exchange.path, request.method)
        exchange.upstream = service.upstream
        # Size before tokens when the head declares it (as nginx does): an oversized request is
        # refused from its head alone, whatever its route's rules. A chunked body's size is
        # known only by reading it, and bodies are read only for requests that will be
        # forwarded (after tokens, scopes and limits), so an unauthorised client never makes
        # the gateway buffer anything: 401/403 first, 413 while reading.
        length = request.content_length
        if length is not None and length > service.max_body_bytes:
            raise PayloadTooLarge(f"the body may be at most {service.max_body_bytes} bytes")
        origin = headers.get("Origin")
        if origin is not None and cors.is_preflight(request.method, headers):
            preflight = await self._preflight(request, exchange, origin)
            if preflight is not None:
                return preflight
        if match is None:
            match = self.routes.match(exchange.path, request.method)
            assert match is not None
            if len(self._resolved) >= RESOLVED_MAX:
                self._resolved.clear()
            self._resolved[(exchange.path, request.method)] = match
        exchange.route, exchange.upstream = match.pattern, match.service.upstream
        if origin is not None and match.route.cors is not None and match.route.cors.allows(origin):
            exchange.cors = match.route.cors.response_headers(origin)  # before tokens: a page may read a 401
        if match.route.redact:
            exchange.path = match.pattern
        authorization = headers.getall("Authorization", [])
        if not match.route.public:
            token = bearer(authorization)
            exchange.claims = await self.tokens.verify(token, match.service.audience)
            if match.route.scopes:
                check_scopes(exchange.claims, match.route.scopes)
        elif len(authorization) > 1:
            bearer(authorization)  # raises MultipleAuthorization
        who = (exchange.claims or {}).get("client_id") or exchange.source
        kind = "client" if exchange.claims else "ip"
        decision = await self.limits.take(match.route.rate_limit, match.pattern, f"{kind}:{who}")
        limit_headers = decision.headers() if decision else {}
        if decision and not decision.allowed:
            raise RateLimited("too many requests; slow down", headers=limit_headers)
        if time.monotonic() < self.audit_down_until:
            raise AuditUnavailable("the audit log cannot be written; nothing is forwarded until it can")
        body = await self._read_body(request, match, exchange)
        upstream = self.upstreams[match.service.upstream]
        out_headers = upstream_headers(headers.items(), headers.getall("Connection", []))
        out_headers += forwarding_headers(client=exchange.source, boundary=self.boundary,
                                          prefix=match.service.prefix, request_id=exchange.request_id)
        out_headers += caller_headers(exchange.claims)
        query = request.raw_path.partition("?")[2]
        response = await upstream.send(request.method, match.rest + (f"?{query}" if query else ""), out_headers,
                                       body, match.service.timeout_s)
        try:
            return await self._relay(request, upstream, response, exchange, limit_headers, match.service.timeout_s)
        finally:
            response.release()

    def _service(self, path: str, method: str) -> Service:
        """The service a path not resolved before goes to.

        :raise PathTraversal, BadPath: see ``paths.check_path``. :raise MethodNotAllowed: a
            method the gateway never forwards. :raise NoRoute: no service at this prefix.
        """
        check_path(path)
        if method not in FORWARDED_METHODS:
            raise MethodNotAllowed(f"{method} is not forwarded",
                                   headers={"Allow": ", ".join(sorted(FORWARDED_METHODS))})
        found = self.routes.service_for(path)
        if found is None:
            raise NoRoute("no service is routed at this path")
        return found[0]

    async def _preflight(self, request: web.BaseRequest, exchange: Exchange, origin: str) -> WholeResponse | None:
        """A CORS preflight for a route with a CORS policy, answered here without a token (browsers
        send none); ``None``: the route has no policy, the request goes on as any ``OPTIONS``.

        :raise CorsRefused: the origin, or a requested header, is not allowed.
        """
        try:
            match = self.routes.match(exchange.path, request.headers["Access-Control-Request-Method"].upper())
        except MethodNotAllowed:
            return None
        if match is None or match.route.cors is None:
            return None
        exchange.route, exchange.upstream = match.pattern, None
        policy = match.route.cors
        answer = policy.preflight_headers(origin, match.route.methods,
                                          request.headers.get("Access-Control-Request-Headers", ""))
        if not policy.allows(origin) or answer is None:
            raise CorsRefused("this origin, method or header may not call this route")
        exchange.status, exchange.reason = 204, "cors_preflight"
        await self._audit(exchange)
        return WholeResponse(204, [*answer.items(), ("X-Request-ID", exchange.request_id)], None)

    async def _read_body(self, request: web.BaseRequest, match: Match, exchange: Exchange) -> bytes:
        """The whole body, before anything is forwarded (a slow client costs the service nothing).

        :raise PayloadTooLarge: over the route's limit. :raise RequestTimeout: not sent in time.
        :raise MalformedRequest: broken chunked framing.
        """
        if not request.body_exists:
            return b""
        limit = match.service.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"the body may be at most {limit} bytes")
        if request.headers.get("Expect", "").lower() == "100-continue":
            # Checked and authorised: now the client may send its body (RFC 9110 §10.1.1).
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        chunks: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    return
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body may be at most {limit} bytes")
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read(), self.body_timeout_s)
        except TimeoutError:
            raise RequestTimeout("the request body was not sent in time") from None
        except (RequestPayloadError, ValueError, OSError) as exc:  # bad chunk sizes, a body cut short
            raise MalformedRequest("the request body is not framed correctly") from exc
        exchange.bytes_in = size
        return b"".join(chunks)

    async def _relay(self, request: web.BaseRequest, source: Upstream, upstream: Response, exchange: Exchange,
                     limit_headers: dict[str, str], timeout: float) -> web.StreamResponse | WholeResponse:
        # Hop-by-hop and framing fields and the service's own CORS headers dropped in one pass.
        headers = response_headers(upstream.headers, upstream.connection_values,
                                   drop_prefix=cors.SERVICE_HEADERS_DROPPED)
        headers.append(("X-Request-ID", exchange.request_id))
        headers.extend(limit_headers.items())
        if exchange.cors:
            headers = CIMultiDict(headers)
            cors.add_headers(headers, exchange.cors)
        exchange.status = upstream.status
        if upstream.status >= 500:
            exchange.outcome, exchange.reason = "error", f"upstream_{upstream.status}"
        length = upstream.content_length
        no_body = request.method == "HEAD" or upstream.status in (204, 304) or 100 <= upstream.status < 200
        if no_body or (length is not None and length <= BUFFER_LIMIT):
            try:
                data = b"" if no_body else await upstream.read(timeout)
            except UpstreamError as exc:
                source.broke_off(upstream)
                raise UpstreamUnavailable(f"{exchange.upstream} broke off its answer") from exc
            exchange.bytes_out = len(data)
            await self._audit(exchange)
            return WholeResponse(upstream.status, headers.items() if exchange.cors else headers,
                                 None if no_body else data, head_length=length)
        # Large or unknown length: stream it, never holding it whole.
        response = StreamedResponse(status=upstream.status, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        try:
            async for chunk in upstream.iter_chunks(timeout):
                exchange.bytes_out += len(chunk)
                await response.write(chunk)
        except UpstreamError:
            source.broke_off(upstream)
            exchange.status, exchange.outcome, exchange.reason = 502, "error", "upstream_broke_off"
            await self._audit(exchange)
            if request.transport is not None:
                request.transport.abort()  # the client must not take a cut-off body for a whole one
            raise ConnectionResetError("upstream broke off mid-stream") from None
        try:
            await self._audit(exchange)
        except AuditUnavailable:
            # Headers are gone already: end the connection without completing the response.
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("audit failed mid-stream") from None
        await response.write_eof()
        return response

    # -- errors and audit ----------------------------------------------------------------------
    async def _problem_response(self, request: web.BaseRequest, exchange: Exchange,
                                problem: EdgeProblem) -> WholeResponse:
        exchange.status, exchange.outcome, exchange.reason = problem.status, outcome_of(problem), problem.code
        try:
            await self._audit(exchange)
        except AuditUnavailable as failed:
            if problem.code != failed.code:
                problem = failed
                exchange.status, exchange.outcome, exchange.reason = problem.status, "error", problem.code
        headers = problem_headers(problem)
        headers["X-Request-ID"] = exchange.request_id
        pairs = headers.items()
        if exchange.cors:
            pairs = CIMultiDict(pairs)
            cors.add_headers(pairs, exchange.cors)
            pairs = pairs.items()
        response = WholeResponse(problem.status, pairs, problem_body(problem, exchange.request_id))
        if problem.status in (400, 408, 413, 431) or problem.status >= 500 and problem.code == "internal_error":
            response.force_close()  # the rest of what the client sent cannot be trusted or is unread
        return response

    async def _audit(self, exchange: Exchange) -> None:
        """:raise AuditUnavailable: the sink refused the record (the response must not complete)."""
        key = (exchange.route, str(exchange.status), exchange.outcome)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = REQUESTS.labels(*key)
        counter.inc()
        histogram = self._timed.get(exchange.route)
        if histogram is None:
            histogram = self._timed[exchange.route] = LATENCY.labels(exchange.route)
        histogram.observe(time.perf_counter() - exchange.started)
        try:
            await self.sink.record(exchange.record())
        except Exception as exc:
            AUDIT_FAILURES.inc()
            self.audit_down_until = time.monotonic() + AUDIT_PAUSE_S
            log.error("audit_record_failed", request_id=exchange.request_id, error_type=type(exc).__name__)
            raise AuditUnavailable("the audit log cannot be written") from exc

    async def parse_error_response(self, request: web.BaseRequest, problem: EdgeProblem) -> WholeResponse:
        """For requests aiohttp could not parse (see ``protocol``)."""
        exchange = Exchange(request_id=new_request_id(), source=request.remote or "", method="-", path="-")
        response = await self._problem_response(request, exchange, problem)
        response.force_close()
        return response

    def raw_error(self, peer: str | None, problem: EdgeProblem) -> bytes:
        """A response written straight to a connection (header timeout, too many connections);
        its audit record is written in the background (there is no request to hold)."""
        exchange = Exchange(request_id=new_request_id(), source=peer or "", method="-", path="-",
                            status=problem.status, outcome=outcome_of(problem), reason=problem.code)
        task = asyncio.get_running_loop().create_task(self._audit_quietly(exchange))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return raw_problem_response(problem, problem_body(problem, exchange.request_id), problem_headers(problem))

    async def _audit_quietly(self, exchange: Exchange) -> None:
        with contextlib.suppress(AuditUnavailable):  # logged and counted; the connection closes anyway
            await self._audit(exchange)

    # -- the gateway's own endpoints -------------------------------------------------------------
    def readiness(self) -> tuple[int, dict[str, Any]]:
        synced = self.tokens.revocations.updated_at
        age = None if synced is None else round(time.time() - synced, 1)
        audit_ok = time.monotonic() >= self.audit_down_until
        status = getattr(self.sink, "status", None)
        audit_log = status() if status is not None else None
        if audit_log is not None and not audit_log.get("ready", True):
            audit_ok = False  # the writer cannot reach the log: the spool's bound will soon answer 503
        body = {"status": "ready", "token_keys": self.tokens.ready, "audit": "ok" if audit_ok else "failing",
                "revocations_age_s": age,
                "upstreams": {name: up.health() for name, up in sorted(self.upstreams.items())}}
        if audit_log is not None:
            body["audit_log"] = audit_log
        if self.server is not None:
            body["connections"] = self.server.open_connections
        # Not ready without keys (every token would be refused) or without audit; an upstream
        # that is down is reported, not fatal: the gateway still serves the others.
        if not self.tokens.ready or not audit_ok:
            body["status"] = "not_ready"
            return 503, body
        return 200, body

    def _local(self, path: str) -> WholeResponse:
        if path == "/livez":
            return _json_answer(200, {"status": "ok"})
        if path == "/readyz":
            status, body = self.readiness()
            return _json_answer(status, body)
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return WholeResponse(200, [("Content-Type", CONTENT_TYPE_LATEST)], generate_latest(registry))


def _json_answer(status: int, body: Any) -> WholeResponse:
    return WholeResponse(status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(body).encode())
