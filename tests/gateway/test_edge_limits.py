"""The edge's limits (a real edge over TCP): head and body sizes (declared or chunked), heads and
bodies that trickle, half-open and too many connections, the rate limit."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
import requests

from tests.gateway.conftest import parse_raw, route_files
from tests.support.half_open import half_open_heads


def test_oversized_head_is_431(edge):
    raw = f"GET /seal/livez HTTP/1.1\r\nHost: {edge.host}\r\nX-Big: {'a' * 10000}\r\n\r\n".encode()
    status, _, body = parse_raw(edge.raw(raw))
    assert status == 431 and json.loads(body)["code"] == "headers_too_large"


def test_oversized_body_is_413_before_reading(edge):
    response = requests.post(f"{edge.url}/seal/verify", data=b"x" * (4 * 1024 * 1024 + 1))
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


@pytest.fixture
def edge_without_payment_routes(start_edge, tmp_path):
    """payment without a route file: only the default body limit and "any token" apply."""
    return start_edge(GATEWAY_MAX_BODY_BYTES=1000, GATEWAY_ROUTES_DIR=route_files(tmp_path, drop=("payment.yaml",)))


def _chunks():
    for _ in range(10):
        yield b"y" * 500


def test_chunked_body_over_the_limit_is_413(edge_without_payment_routes):
    edge = edge_without_payment_routes
    token = edge.tokens.bearer(aud="xsn:payment")
    response = requests.post(f"{edge.url}/payment/notices", data=_chunks(), headers=token)
    assert response.status_code == 413
    assert edge.records(response.headers["X-Request-ID"])[0]["reason"] == "payload_too_large"


def test_declared_oversized_body_is_413_before_any_token_check(edge_without_payment_routes):
    # A Content-Length over the limit is refused from the head alone, as nginx does: the client
    # learns nothing about the route's token rules and nothing of the body is read.
    edge = edge_without_payment_routes
    response = requests.post(f"{edge.url}/payment/notices", data=b"y" * 5000)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_chunked_body_of_an_unauthorised_request_is_not_read(edge_without_payment_routes):
    # A chunked body's size is known only by reading it; the gateway reads bodies only of
    # requests it will forward, so a request without a token is refused 401 first.
    edge = edge_without_payment_routes
    response = requests.post(f"{edge.url}/payment/notices", data=_chunks())
    assert response.status_code == 401
    record = edge.records(response.headers["X-Request-ID"])[0]
    assert record["bytes_in"] == 0 and record["upstream"] == "payment"


def test_trickling_head_gets_408(start_edge):
    edge = start_edge(GATEWAY_HEADER_TIMEOUT=0.5)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"GET /seal/livez HTTP/1.1\r\nHost: {edge.host}\r\nX-Slow: ".encode())
        started = time.monotonic()
        answer = sock.recv(65536)
        assert time.monotonic() - started < 3
    status, headers, body = parse_raw(answer)
    assert status == 408 and json.loads(body)["code"] == "request_timeout"
    assert any(r["reason"] == "request_timeout" for r in edge.records())


def test_trickling_body_gets_408(start_edge):
    edge = start_edge(GATEWAY_BODY_TIMEOUT=0.5)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"POST /seal/verify HTTP/1.1\r\nHost: {edge.host}\r\nContent-Length: 100\r\n\r\nabc".encode())
        status, _, body = parse_raw(sock.recv(65536))
    assert status == 408 and json.loads(body)["code"] == "request_timeout"


def test_idle_half_open_connections_do_not_block_others(edge):
    """Finding 1: two connections that never finish their heads took the old gateway offline."""
    with half_open_heads("127.0.0.1", edge.port, edge.host, "/seal/livez", 50):
        started = time.monotonic()
        response = requests.get(f"{edge.url}/seal/livez", timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0


def test_too_many_connections_get_503(start_edge):
    edge = start_edge(GATEWAY_MAX_CONNECTIONS=3)
    held = [socket.create_connection(("127.0.0.1", edge.port), timeout=5) for _ in range(3)]
    try:
        status, _, body = parse_raw(edge.raw(b""))
        assert status == 503 and json.loads(body)["code"] == "overloaded"
    finally:
        for sock in held:
            sock.close()


def test_rate_limit_429_with_headers(start_edge):
    edge = start_edge(GATEWAY_RATE_LIMITS={"default": {"rate": 0.01, "burst": 3}})
    headers = edge.tokens.bearer(aud="xsn:seal", client_id="greedy")
    answers = [requests.get(f"{edge.url}/seal/x", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == "3" and answers[0].headers["RateLimit-Remaining"] == "2"
    limited = answers[3]
    assert limited.json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert edge.records(limited.headers["X-Request-ID"])[0]["outcome"] == "denied"
    # Another client has its own bucket.
    assert requests.get(f"{edge.url}/seal/x", headers=edge.tokens.bearer(aud="xsn:seal", client_id="other")).ok


def test_an_oversized_request_line_is_414(edge):
    """aiohttp says "Got more than 8190 bytes" alike for the request line and a header field:
    a request target that long is a URI too long (414), not a head too large (431)."""
    raw = f"GET /seal/livez?pad={'a' * 9000} HTTP/1.1\r\nHost: {edge.host}\r\n\r\n".encode()
    status, _, body = parse_raw(edge.raw(raw))
    assert status == 414 and json.loads(body)["code"] == "uri_too_long"
    absolute = f"GET http://{edge.host}/seal/livez?pad={'a' * 9000} HTTP/1.1\r\nHost: {edge.host}\r\n\r\n".encode()
    assert parse_raw(edge.raw(absolute))[0] == 414
    long_name = f"GET /seal/livez HTTP/1.1\r\nHost: {edge.host}\r\nX-{'b' * 9000}: 1\r\n\r\n".encode()
    assert parse_raw(edge.raw(long_name))[0] == 431


@pytest.mark.parametrize("name, value", [
    ("Referer", "/seal/page?pad="),  # aiohttp quotes only the value: it reads like a request target
    ("Referer", "https://example.test/page?pad="),
    ("Origin", "http://example.test/"),
    ("X-Plain", ""),
])
def test_an_oversized_header_is_431_whatever_its_value_looks_like(edge, name, value):
    raw = f"GET /seal/livez HTTP/1.1\r\nHost: {edge.host}\r\n{name}: {value}{'a' * 9000}\r\n\r\n".encode()
    status, _, body = parse_raw(edge.raw(raw))
    assert status == 431 and json.loads(body)["code"] == "headers_too_large"


def test_the_limits_between_414_and_431(edge, monkeypatch):
    """The request target may be 8190 bytes, a header field 8189 (the limit exceeded is what
    tells 414 from 431); a name too long and more header fields than allowed are 431 too."""
    limit = edge.edge.config["GATEWAY_MAX_HEADER_BYTES"]

    def answer(target: str, *headers: str) -> tuple[int, str]:
        head = "".join(f"{header}\r\n" for header in (f"Host: {edge.host}", *headers))
        status, _, body = parse_raw(edge.raw(f"GET {target} HTTP/1.1\r\n{head}\r\n".encode()))
        return status, json.loads(body).get("code", "") if body.startswith(b"{") else ""

    target = "/seal/livez?pad="
    assert answer(target + "a" * (limit - len(target)))[0] == 200
    assert answer(target + "a" * (limit - len(target) + 1)) == (414, "uri_too_long")
    # (aiohttp counts a header's name with its value only for the first header after Host.)
    assert answer("/seal/livez", f"X-Pad: {'a' * (limit - 1)}")[0] == 200
    assert answer("/seal/livez", f"X-Pad: {'a' * limit}") == (431, "headers_too_large")
    assert answer("/seal/livez", f"X-{'n' * limit}: 1") == (431, "headers_too_large")  # the name alone
    many = edge.edge.config["GATEWAY_MAX_HEADERS"]
    # With Host, as many fields as allowed pass the edge and reach the upstream. The echo app's
    # server (http.server, in this process) takes 100 at most, like gunicorn's default, and the
    # edge adds its forwarding headers: raised here as the services' gunicorn is raised
    # (common.ops.http_limits.upstream_header_limits).
    monkeypatch.setattr(http.client, "_MAXHEADERS", many + 32)
    assert answer("/seal/livez", *(f"X-H{i}: 1" for i in range(many - 1))) == (200, "")
    assert answer("/seal/livez", *(f"X-H{i}: 1" for i in range(many))) == (431, "headers_too_large")


def test_the_edge_refuses_one_limit_for_request_line_and_header_field():
    """Equal limits would leave a line too long unable to say whether it was 414 or 431."""
    from gateway.edge.protocol import EdgeServer

    with pytest.raises(ValueError, match="must differ"):
        EdgeServer(None, error_responder=None, raw_responder=None, max_connections=1, header_timeout=1.0,
                   max_line_size=8190, max_field_size=8190)
