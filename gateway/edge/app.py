"""Building and running the edge from configuration (the same ``XSN_*`` layers as every app)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from common import config as cfg
from common.ops.http_limits import MAX_REQUEST_LINE  # the services' gunicorn request-line ceiling
from gateway.config import load_config  # noqa: F401 - where the edge's callers find it
from gateway.edge.audit_sink import AuditSink, load_sink
from gateway.edge.boundary import Boundary
from gateway.edge.limits import MemoryLimiter, Policy, RateLimits, RedisLimiter
from gateway.edge.protocol import EdgeServer
from gateway.edge.revocations import RevocationFeed, subscribe_forever
from gateway.edge.routing import ROUTES_DIR, RouteTable
from gateway.edge.server import Gateway
from gateway.edge.tokens import AccessTokens, RevocationList
from gateway.edge.upstreams import Breaker, Upstream

log = structlog.get_logger("xsn.gateway")
HEALTH_INTERVAL_S = 5.0


def _csv(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def client_secret(config: dict[str, Any]) -> str | None:
    """``GATEWAY_CLIENT_SECRET``, or (embedded only) the demo secret identity's seed wrote."""
    if config.get("GATEWAY_CLIENT_SECRET"):
        return str(config["GATEWAY_CLIENT_SECRET"])
    if config.get("ENV") == "production":
        return None
    try:
        clients = json.loads((Path(config["VAR_DIR"]) / "clients.json").read_text())
        return clients[config["GATEWAY_CLIENT_ID"]]["client_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def jwks_fetcher(url: str, session: aiohttp.ClientSession):
    async def fetch() -> dict:
        if url.startswith("file://"):
            return json.loads(await asyncio.to_thread(Path(url.removeprefix("file://")).read_text))
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    return fetch


def upstream_sockets(value: Any, upstreams: set[str]) -> dict[str, str]:
    """``GATEWAY_UPSTREAM_SOCKETS``: upstream name -> absolute path of its Unix domain socket.

    :raise RuntimeError: not a mapping, an upstream no route names (a typo would silently leave
        that service on TCP), or a path that is not absolute (it would depend on the edge's
        working directory).
    """
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise RuntimeError(f"GATEWAY_UPSTREAM_SOCKETS must map upstream names to socket paths, not {value!r}"[:200])
    unknown = sorted(str(name) for name in value if name not in upstreams)
    if unknown:
        raise RuntimeError(f"GATEWAY_UPSTREAM_SOCKETS names unknown upstreams: {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(upstreams))})")
    relative = sorted(f"{name}={path!r}" for name, path in value.items()
                      if not isinstance(path, str) or not os.path.isabs(path))
    if relative:
        raise RuntimeError(f"GATEWAY_UPSTREAM_SOCKETS paths must be absolute: {', '.join(relative)}")
    return dict(value)


class Edge:
    """One process's gateway: the handler, its background tasks, its listening server."""

    def __init__(self, config: dict[str, Any], *, listen_port: int, sink: AuditSink | None = None,
                 worker: str = "0") -> None:
        self.config = config
        self.worker = worker  # this process's stable name among the edge's processes (its audit spool)
        self.listen_port = listen_port
        urls = dict(config["SERVICE_URLS"])
        if config.get("GATEWAY_ADMIN_URL"):
            urls["gateway_admin"] = str(config["GATEWAY_ADMIN_URL"]).rstrip("/")
        services = [s for s in cfg.SERVICES if s != "gateway"]
        directory = Path(config["GATEWAY_ROUTES_DIR"]) if config.get("GATEWAY_ROUTES_DIR") else ROUTES_DIR
        self.routes = RouteTable.load(directory, services=services,
                                      default_timeout=float(config["GATEWAY_UPSTREAM_TIMEOUT"]),
                                      default_max_body=int(config["GATEWAY_MAX_BODY_BYTES"]))
        missing = self.routes.upstreams() - set(urls)
        if missing:
            raise RuntimeError(f"no URL for upstreams: {', '.join(sorted(missing))}")
        self.sockets = upstream_sockets(config.get("GATEWAY_UPSTREAM_SOCKETS"), self.routes.upstreams())
        if int(config["GATEWAY_MAX_HEADER_BYTES"]) > MAX_REQUEST_LINE:
            # The services' gunicorn takes no longer request line (its own ceiling): a longer
            # target would pass the edge and get gunicorn's HTML 414 instead of a problem document.
            raise RuntimeError(f"GATEWAY_MAX_HEADER_BYTES may be at most {MAX_REQUEST_LINE} "
                               "(the longest request line the services' gunicorn takes)")
        self.boundary = Boundary.from_settings(
            config["PUBLIC_BASE_URL"], extra_hosts=_csv(config.get("GATEWAY_PUBLIC_HOSTS")), listen_port=listen_port,
            embedded=config.get("ENV") != "production", trusted_proxies=_csv(config.get("GATEWAY_TRUSTED_PROXIES")),
            trusted_hops=int(config.get("GATEWAY_TRUSTED_HOPS") or 0))
        self.urls = urls
        self.sink = sink
        self.gateway: Gateway | None = None
        self.server: EdgeServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self._redis = None

    async def start(self) -> Gateway:
        config = self.config
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        revocations = RevocationList()
        issuer = (config.get("OAUTH_ISSUER") or f"{config['PUBLIC_BASE_URL'].rstrip('/')}/identity").rstrip("/")
        jwks_url = config.get("OAUTH_JWKS_URL") or f"{self.urls['identity']}/jwks.json"
        tokens = AccessTokens(issuer=issuer, fetch_jwks=jwks_fetcher(jwks_url, self._session), revocations=revocations,
                              min_refresh=float(config["GATEWAY_JWKS_MIN_REFRESH"]))
        policies = {name: Policy.parse(raw) for name, raw in dict(config["GATEWAY_RATE_LIMITS"]).items()}
        if config.get("REDIS_URL"):
            import redis.asyncio as redis

            self._redis = redis.from_url(config["REDIS_URL"], socket_timeout=0.5, socket_connect_timeout=0.5)
            limiter = RedisLimiter(self._redis)
        else:
            limiter = MemoryLimiter()
        limits = RateLimits(limiter, policies, enabled=bool(config.get("RATELIMIT_ENABLED", True)))
        upstreams = {}
        for name in sorted(self.routes.upstreams()):
            upstream = Upstream(name, self.urls[name], connections=int(config["GATEWAY_UPSTREAM_CONNECTIONS"]),
                                retries=int(config["GATEWAY_RETRIES"]), unix_socket=self.sockets.get(name),
                                breaker=Breaker(failures=int(config["GATEWAY_BREAKER_FAILURES"]),
                                                open_s=float(config["GATEWAY_BREAKER_OPEN"])))
            upstream.start()
            upstreams[name] = upstream
        self.sink = self.sink or load_sink(config, worker=self.worker)
        self.gateway = Gateway(routes=self.routes, boundary=self.boundary, tokens=tokens, limits=limits,
                               upstreams=upstreams, sink=self.sink,
                               body_timeout_s=float(config["GATEWAY_BODY_TIMEOUT"]))
        # With Redis, identity's pushes arrive at once; polling then only catches up on misses.
        interval = float(config["GATEWAY_REVOCATION_POLL"]) * (30 if config.get("REDIS_URL") else 1)
        feed = RevocationFeed(revocations, identity_url=self.urls["identity"], client_id=config["GATEWAY_CLIENT_ID"],
                              client_secret=None, session=self._session, interval=interval)
        self._spawn(self._load_keys(tokens))
        self._spawn(self._poll_revocations(feed))
        if config.get("REDIS_URL"):
            self._spawn(subscribe_forever(revocations, config["REDIS_URL"]))
        for upstream in upstreams.values():
            self._spawn(self._watch(upstream))
        return self.gateway

    def _spawn(self, coro) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    async def _load_keys(self, tokens: AccessTokens) -> None:
        while not tokens.ready:  # until the first JWKS: identity may still be starting
            await tokens.refresh(bounded=False)
            if not tokens.ready:
                await asyncio.sleep(0.5)
        while True:
            await asyncio.sleep(tokens.ttl)
            await tokens.refresh()

    async def _poll_revocations(self, feed: RevocationFeed) -> None:
        while feed.client_secret is None:  # identity's seed may write clients.json after we start
            feed.client_secret = client_secret(self.config)
            if feed.client_secret is None:
                await asyncio.sleep(1.0)
        await feed.poll_forever()

    async def _watch(self, upstream: Upstream) -> None:
        while True:
            await upstream.probe()
            await asyncio.sleep(HEALTH_INTERVAL_S)

    def server_factory(self) -> EdgeServer:
        assert self.gateway is not None
        config = self.config
        self.server = EdgeServer(
            self.gateway.handle, error_responder=self.gateway.parse_error_response,
            raw_responder=self.gateway.raw_error, max_connections=int(config["GATEWAY_MAX_CONNECTIONS"]),
            header_timeout=float(config["GATEWAY_HEADER_TIMEOUT"]),
            keepalive_timeout=float(config["GATEWAY_IDLE_TIMEOUT"]),
            # A header field one byte shorter than the request target: the limit a line exceeds
            # then tells a URI too long (414) from a header too large (431), see parse_problem.
            max_line_size=int(config["GATEWAY_MAX_HEADER_BYTES"]),
            max_field_size=int(config["GATEWAY_MAX_HEADER_BYTES"]) - 1,
            max_headers=int(config["GATEWAY_MAX_HEADERS"]),
            access_log=None, auto_decompress=False, lingering_time=2.0)
        self.gateway.server = self.server
        return self.server

    async def serve(self, sock: socket.socket) -> asyncio.AbstractServer:
        if self.gateway is None:
            await self.start()
        return await asyncio.get_running_loop().create_server(self.server_factory(), sock=sock, backlog=4096)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.shutdown(1.0)
        if self.gateway is not None:
            for upstream in self.gateway.upstreams.values():
                await upstream.close()
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.aclose()
        close = getattr(self.sink, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        # Each worker process binds the same port; the kernel spreads connections among them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock
