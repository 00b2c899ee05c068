"""The service-to-service client: request ids travel, only idempotent calls are retried."""

from __future__ import annotations

import time

import pytest
import requests
import structlog
from flask import Flask, jsonify, request

from common.http import ServiceClient
from tests.support.suite import free_port


def peer_app():
    app = Flask("peer")
    app.calls = {"GET": 0, "POST": 0}

    @app.route("/flaky", methods=["GET", "POST"])
    def flaky():
        app.calls[request.method] += 1
        if app.calls[request.method] < 3:
            return {"error": "busy"}, 503
        return {"ok": True, "request_id": request.headers.get("X-Request-ID"),
                "authorization": request.headers.get("Authorization")}

    @app.route("/busy/<int:seconds>")
    def busy(seconds):
        app.calls["GET"] += 1
        if app.calls["GET"] == 1:
            return {"error": "busy"}, 503, {"Retry-After": str(seconds)}
        return {"ok": True}

    @app.route("/whoami")
    def whoami():
        return {"authorization": request.headers.get("Authorization")}

    @app.route("/cookie")
    def cookie():
        response = jsonify(cookie=request.cookies.get("s"))
        response.set_cookie("s", "first-callers-session")
        return response

    return app


def test_get_is_retried_and_carries_request_id_and_token(serve_app):
    app = peer_app()
    client = ServiceClient(serve_app(app), retries=2, token_provider=lambda: "tok-1")
    structlog.contextvars.bind_contextvars(request_id="req-12345678")
    try:
        response = client.get("/flaky")
    finally:
        structlog.contextvars.clear_contextvars()
    assert response.status_code == 200
    assert response.json() == {"ok": True, "request_id": "req-12345678", "authorization": "Bearer tok-1"}
    assert app.calls["GET"] == 3


def test_post_is_not_retried(serve_app):
    app = peer_app()
    response = ServiceClient(serve_app(app), retries=2).post("/flaky", json={})
    assert response.status_code == 503
    assert app.calls["POST"] == 1  # may have reached the peer: never sent twice behind the caller's back


def test_unreachable_peer_raises_after_bounded_retries():
    client = ServiceClient(f"http://127.0.0.1:{free_port()}", retries=1, timeout=1)
    with pytest.raises(requests.ConnectionError):
        client.get("/anything")


def test_a_client_keeps_no_cookie_from_one_call_to_the_next(serve_app):
    """One client serves every request of its app: a cookie kept would go to the next caller."""
    client = ServiceClient(serve_app(peer_app()))
    assert client.get("/cookie").json() == {"cookie": None}
    assert client.get("/cookie").json() == {"cookie": None}
    assert not client.session.cookies


def test_a_retry_after_within_the_cap_is_honoured(serve_app):
    app = peer_app()
    client = ServiceClient(serve_app(app), retries=2, retry_after_max=2)
    started = time.monotonic()
    response = client.get("/busy/1")
    assert response.status_code == 200 and app.calls["GET"] == 2
    assert time.monotonic() - started >= 0.9  # it did wait as asked before the retry


def test_a_retry_after_beyond_the_cap_does_not_hold_the_worker(serve_app):
    """A peer asking for an hour's pause gets its answer passed back at once, not a sleeping worker."""
    app = peer_app()
    client = ServiceClient(serve_app(app), retries=2, retry_after_max=2)
    started = time.monotonic()
    response = client.get("/busy/3600")
    assert time.monotonic() - started < 1.5
    assert response.status_code == 503 and response.headers["Retry-After"] == "3600"
    assert app.calls["GET"] == 1


def test_the_cap_comes_from_configuration(serve_app):
    app = peer_app()
    client = ServiceClient.from_config(serve_app(app), {"HTTP_RETRY_AFTER_MAX": 0.5, "HTTP_RETRIES": 2})
    assert client.get("/busy/1").status_code == 503 and app.calls["GET"] == 1
    assert client.timeout == 5.0


def test_the_token_is_sent_to_the_peer_only(serve_app):
    """An absolute URL elsewhere (an upstream's endpoint from its discovery) never gets our token."""
    peer, elsewhere = serve_app(peer_app()), serve_app(peer_app())
    client = ServiceClient(peer, token_provider=lambda: "tok-1")
    assert client.get("/whoami").json() == {"authorization": "Bearer tok-1"}
    assert client.get(f"{peer}/whoami").json() == {"authorization": "Bearer tok-1"}
    assert client.get(f"{elsewhere}/whoami").json() == {"authorization": None}
