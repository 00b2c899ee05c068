"""A real edge on a free port in a thread, in front of real HTTP upstreams (Flask under werkzeug).

``edge = start_edge(seal=url, ...)`` returns an :class:`EdgeHandle`: its ``url``, the
in-memory audit ``sink``, the ``tokens`` factory whose JWKS it trusts, and ``gateway``
(the handler object, for tests that reach into revocations or breakers).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask, Response, request, stream_with_context

from gateway.edge.app import Edge, listening_socket, load_config
from gateway.edge.audit_sink import MemoryAuditSink
from tests.support.suite import TokenFactory, free_port

ISSUER = "http://127.0.0.1:8000/identity"


def echo_app() -> Flask:
    """An upstream that tells what it received."""
    app = Flask("echo")

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def echo(path: str):
        if path == "livez":
            return {"status": "ok"}
        if path.startswith("status/"):
            return Response("{}", status=int(path.split("/")[1]), mimetype="application/json")
        if path.startswith("problem/"):  # a service's own problem answer (503 database_busy)
            status = int(path.split("/")[1])
            return Response(json.dumps({"status": status, "code": "database_busy", "title": "Busy"}), status=status,
                            mimetype="application/problem+json")
        if path == "cut":  # a streamed body the service breaks off (werkzeug drops the connection)

            def cut():
                yield b"x" * 65536
                raise RuntimeError("the service broke off its answer")

            return Response(stream_with_context(cut()), mimetype="application/octet-stream")
        if path == "big":
            size = int(request.args.get("size", 1024 * 1024))

            def body():
                for _ in range(size // 65536):
                    yield b"x" * 65536

            return Response(stream_with_context(body()), mimetype="application/octet-stream")
        if path == "cors":  # a service that sets its own CORS headers (the gateway drops them)
            response = Response("{}", mimetype="application/json")
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Allow-Credentials"] = "true"
            return response
        if path == "hop":
            response = Response("ok")
            response.headers["Connection"] = "X-Secret-Hop"
            response.headers["X-Secret-Hop"] = "leak"
            response.headers["Set-Cookie"] = "a=1"
            return response
        return {"method": request.method, "path": request.full_path if request.query_string else request.path,
                "headers": [[k, v] for k, v in request.headers.items()], "body_length": len(request.get_data()),
                "remote_addr": request.remote_addr}

    return app


@dataclass
class EdgeHandle:
    url: str
    port: int
    sink: MemoryAuditSink
    tokens: TokenFactory
    edge: Edge
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def gateway(self):
        return self.edge.gateway

    @property
    def host(self) -> str:
        """The ``Host`` the edge serves as: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the edge's loop (for tests that poke its state) and return the result."""
        return asyncio.run_coroutine_threadsafe(_acall(fn, *args), self.loop).result(5)

    def raw(self, data: bytes, *, read_timeout: float = 5.0) -> bytes:
        """Send raw bytes on a fresh connection; everything the edge answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except TimeoutError:
                pass
            return b"".join(chunks)

    def records(self, request_id: str | None = None, *, wait: float = 2.0) -> list[dict]:
        deadline = time.monotonic() + wait
        while True:
            found = [r for r in self.sink.records if request_id is None or r["request_id"] == request_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


async def _acall(fn, *args):
    result = fn(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result


def parse_raw(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@pytest.fixture
def echo_url(serve_app) -> str:
    return serve_app(echo_app())


@pytest.fixture
def start_edge(tmp_path, echo_url):
    """``start_edge(**config)``: an edge whose identity, seal and admin upstreams are the echo app."""
    handles: list[EdgeHandle] = []

    def start(sink: MemoryAuditSink | None = None, **overrides) -> EdgeHandle:
        port = free_port()
        tokens = TokenFactory(issuer=ISSUER)
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        urls = {"identity": echo_url, "seal": echo_url, "licenses": closed, "payment": closed, "messaging": closed,
                "gateway": f"http://127.0.0.1:{port}"}
        config = load_config({
            "VAR_DIR": str(tmp_path / "var"), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "SERVICE_URLS": urls,
            "OAUTH_ISSUER": ISSUER, "OAUTH_JWKS_URL": tokens.write_jwks(tmp_path / f"jwks-{port}.json"),
            "GATEWAY_ADMIN_URL": echo_url, "REDIS_URL": None, "GATEWAY_CLIENT_SECRET": None,
            **{k.replace("XSN_", ""): v for k, v in overrides.items()},
        })
        for name in ("IDENTITY", "SEAL", "LICENSES", "PAYMENT", "MESSAGING", "GATEWAY"):
            config.pop(f"{name}_URL", None)
        if sink is None and "GATEWAY_AUDIT_SINK" not in overrides:
            sink = MemoryAuditSink()
        edge = Edge(config, listen_port=port, sink=sink)  # None: the sink GATEWAY_AUDIT_SINK names
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = loop.run_until_complete(edge.serve(listening_socket("127.0.0.1", port, reuse_port=False)))
            ready.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert ready.wait(10)
        handle = EdgeHandle(f"http://127.0.0.1:{port}", port, edge.gateway.sink, tokens, edge, loop, thread)
        deadline = time.monotonic() + 5
        while not edge.gateway.tokens.ready and time.monotonic() < deadline:
            time.sleep(0.02)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        asyncio.run_coroutine_threadsafe(handle.edge.close(), handle.loop).result(10)
        handle.loop.call_soon_threadsafe(handle.loop.stop)
        handle.thread.join(10)


def seal_routes(*routes: str, origin: str = "https://app.xian.example") -> str:
    """The seal service's route file with ``routes`` (YAML flow mappings) and a CORS policy for
    ``origin``: for tests of the edge's answers on a seal route of their own."""
    lines = "".join(f"  - {route}\n" for route in routes)
    return f"prefix: /seal\nupstream: seal\naudience: xsn:seal\ncors: {{origins: [\"{origin}\"]}}\nroutes:\n{lines}"


def route_files(tmp_path: Path, *, write: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> str:
    """A copy of the gateway's route files with some replaced (``write``: file name -> YAML) or
    removed (``drop``), for ``start_edge(GATEWAY_ROUTES_DIR=...)``; its path."""
    import shutil
    import tempfile

    from gateway.edge.routing import ROUTES_DIR

    routes = Path(tempfile.mkdtemp(dir=tmp_path)) / "routes"  # a fresh copy on each call
    shutil.copytree(ROUTES_DIR, routes)
    for name, text in (write or {}).items():
        (routes / name).write_text(text)
    for name in drop:
        (routes / name).unlink()
    return str(routes)


@pytest.fixture
def edge(start_edge) -> EdgeHandle:
    """An edge as ``start_edge()`` makes it (modules that need another one define their own)."""
    return start_edge()


def headers_of(body: dict) -> dict[str, list[str]]:
    """The echo app's received headers, by lower-case name."""
    seen: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


__all__ = ["headers_of", "json", "parse_raw"]


def console_client(identity_app, base: str) -> str:
    """The seeded ``xsn-gateway-console`` client pointed at ``base`` (the gateway as the test
    serves it) with a fresh secret, which is returned. Identity's seed creates the client."""
    import secrets

    from common.crypto.keystore import load_kek
    from common.db import get_db as _get_db
    from identity.oauth import clients
    from identity.oauth.models import OAuthClient

    secret = secrets.token_urlsafe(32)
    with identity_app.app_context(), _get_db(identity_app).session() as session:
        client = session.get(OAuthClient, "xsn-gateway-console")
        assert client is not None, "identity's seed did not create xsn-gateway-console"
        client.secret_hash = clients.hash_secret(clients.secret_hash_key(load_kek(identity_app.config)), secret)
        client.redirect_uris = [f"{base}/gateway/audit/console/callback"]
        client.post_logout_redirect_uris = [f"{base}/gateway/audit/console/signed-out"]
        session.commit()
    return secret


def run_async(coroutine):
    """``asyncio.run`` on a fresh thread: the session's Playwright browser (the console's
    Chromium test) keeps an event loop running on the main thread, where ``asyncio.run`` refuses.
    ``coroutine`` is a coroutine, or a function making one (made on that thread)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine() if callable(coroutine) else coroutine)).result()
