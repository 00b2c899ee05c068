"""Requests the edge refuses before anything reaches the service (a real edge over TCP):
traversal and odd paths, unknown prefixes and methods, request-smuggling shapes, a chunked body
broken after the head; ``Expect: 100-continue`` answered only once the checks pass."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.gateway.conftest import parse_raw


@pytest.mark.parametrize("path", ["/seal/../identity/api/v1/people", "/seal/%2e%2e/identity/x", "/seal/%2E%2E/identity",
                                  "/seal/..%2fidentity/x", "/seal/x%2f..%2f..%2fidentity", "/seal/%252e%252e/identity",
                                  "/seal/./livez", "/seal//livez", "/seal/a%5c..%5cidentity", "/seal/%69dentity",
                                  "/seal/%00", "/seal/%zz"])
def test_traversal_and_odd_paths_are_refused_never_forwarded(edge, path):
    raw = f"GET {path} HTTP/1.1\r\nHost: {edge.host}\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = parse_raw(edge.raw(raw))
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] in ("path_traversal", "bad_path")
    assert edge.records(headers["x-request-id"])[0]["outcome"] == "rejected"


def test_unknown_prefix_and_method(edge):
    response = requests.get(f"{edge.url}/nowhere/x")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    raw = f"TRACE /seal/livez HTTP/1.1\r\nHost: {edge.host}\r\nConnection: close\r\n\r\n".encode()
    status, headers, _ = parse_raw(edge.raw(raw))
    assert status == 405 and "GET" in headers["allow"]


@pytest.mark.parametrize("raw_head", [
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "POST /seal/verify HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "GET /seal/livez HTTP/1.1\r\nHost: {host}\r\nX-Bad: a\rb\r\n\r\n",
    "GET /seal/livez HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n\r\n",
])
def test_smuggling_shapes_are_400_and_never_forwarded(edge, raw_head):
    before = [r for r in edge.sink.records if r["status"] == 200]
    status, headers, body = parse_raw(edge.raw(raw_head.format(host=edge.host).encode()))
    assert status == 400, body
    assert headers["content-type"] == "application/problem+json"
    assert headers.get("connection") == "close"
    time.sleep(0.05)
    assert [r for r in edge.sink.records if r["status"] == 200] == before  # nothing reached the upstream
    assert any(r["status"] == 400 for r in edge.sink.records)


def test_expect_100_continue_after_the_checks(edge):
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"POST /seal/verify HTTP/1.1\r\nHost: {edge.host}\r\nContent-Length: 4\r\n"
                     f"Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abcd")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, body = parse_raw(answer)
    assert status == 200 and json.loads(body)["body_length"] == 4
    # Refused before the body is sent: no 100 Continue for a request the gateway will not take.
    status, _, _ = parse_raw(edge.raw(f"POST /seal/seals HTTP/1.1\r\nHost: {edge.host}\r\nContent-Length: 4\r\n"
                                      f"Expect: 100-continue\r\n\r\n".encode()))
    assert status == 401


def test_broken_chunked_body_after_the_head_is_never_forwarded(start_edge):
    """aiohttp's parser does not hand a framing error after the head to the body reader: the
    request then ends at the body timeout (408). Either way nothing reaches the service."""
    edge = start_edge(GATEWAY_BODY_TIMEOUT=1.0)
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"POST /seal/verify HTTP/1.1\r\nHost: {edge.host}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        time.sleep(0.2)  # the head is dispatched alone; the broken chunk comes while the body is read
        sock.sendall(b"5\r\nhello\r\nzz\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, body = parse_raw(answer)
    assert status in (400, 408) and json.loads(body)["code"] in ("malformed_request", "request_timeout")
    assert not [r for r in edge.sink.records if r["status"] == 200]
