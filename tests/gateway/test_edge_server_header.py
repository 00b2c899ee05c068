"""No answer of the gateway's says what it runs on (aiohttp adds ``Server: Python/3.x
aiohttp/...`` unless told otherwise): a front door does not advertise its stack. A service's own
``Server`` is its answer's and passes as it sent it."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest
import requests

from gateway.edge.routing import ROUTES_DIR

APP = "https://app.xian.example"
SEAL_ROUTES = f"""prefix: /seal
upstream: seal
audience: xsn:seal
cors: {{origins: ["{APP}"]}}
routes:
  - {{path: /big, methods: [GET], auth: public}}
  - {{path: /x, methods: [GET], auth: public}}
"""


@pytest.fixture
def edge(start_edge, tmp_path):
    routes = tmp_path / "routes"
    shutil.copytree(ROUTES_DIR, routes)
    (routes / "seal.yaml").write_text(SEAL_ROUTES)
    return start_edge(GATEWAY_ROUTES_DIR=str(routes))


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
    the edge streams it) and no ``Server`` header, which werkzeug always sends. Closing the
    returned listener stops it."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(8)
    chunk = b"x" * 65536
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n" + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 4 + b"0\r\n\r\n")

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head and (data := conn.recv(65536)):
                    head += data
                if head:
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener


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
