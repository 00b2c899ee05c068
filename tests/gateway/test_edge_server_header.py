"""No answer of the gateway's says what it runs on (aiohttp adds ``Server: Python/3.x
aiohttp/...`` unless told otherwise): a front door does not advertise its stack. A service's own
``Server`` is its answer's and passes as it sent it."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.gateway.conftest import route_files, seal_routes
from tests.support.raw_service import serve_raw

APP = "https://app.xian.example"
SEAL_ROUTES = seal_routes("{path: /big, methods: [GET], auth: public}", "{path: /x, methods: [GET], auth: public}",
                          origin=APP)


@pytest.fixture
def edge(start_edge, tmp_path):
    return start_edge(GATEWAY_ROUTES_DIR=route_files(tmp_path, write={"seal.yaml": SEAL_ROUTES}))


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_the_gateway_s_own_answers_carry_no_server_header(edge, path, method):
    answer = requests.request(method, edge.url + path, timeout=5)
    assert answer.status_code in (200, 503)
    assert "Server" not in answer.headers


def test_a_preflight_carries_no_server_header(edge):
    answer = requests.options(f"{edge.url}/seal/x", headers={"Origin": APP, "Access-Control-Request-Method": "GET"},
                              timeout=5)
    assert answer.status_code == 204 and answer.headers["Access-Control-Allow-Origin"] == APP
    assert "Server" not in answer.headers


@pytest.mark.parametrize("path", ["/seal/big?size=524288", "/seal/x"], ids=["streamed", "read-whole"])
def test_forwarded_answers_carry_only_the_service_s_server_header(edge, path):
    answer = requests.get(edge.url + path, timeout=5)
    assert answer.status_code == 200 and answer.content
    # werkzeug names itself; the gateway adds nothing of its own beside it.
    assert answer.headers["Server"].startswith("Werkzeug/") and "aiohttp" not in answer.headers["Server"]


def _serve_chunked_without_server(path: str) -> socket.socket:
    """A service on a unix socket answering each request with a chunked body (unknown length:
    the edge streams it) and no ``Server`` header, which werkzeug always sends."""
    chunk = b"x" * 65536
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n")
    return serve_raw(path, head + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 4 + b"0\r\n\r\n")


def test_a_streamed_answer_from_a_service_without_server_carries_none(start_edge, tmp_path):
    path = str(tmp_path / "payment.sock")
    with _serve_chunked_without_server(path):
        edge = start_edge(GATEWAY_UPSTREAM_SOCKETS={"payment": path})
        answer = requests.get(f"{edge.url}/payment/big", headers=edge.tokens.bearer(aud="xsn:payment"), timeout=5)
    assert answer.status_code == 200 and len(answer.content) == 4 * 65536
    assert "Content-Length" not in answer.headers  # streamed, not read whole
    assert "Server" not in answer.headers


def test_problem_answers_carry_no_server_header(edge):
    answer = requests.get(f"{edge.url}/identity/userinfo", timeout=5)  # no token
    assert answer.status_code == 401 and "Server" not in answer.headers
