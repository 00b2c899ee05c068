"""``protocol.WholeResponse``: a service's answer read whole, written as one head and body.

It stands in for aiohttp's ``web.Response`` on the forwarding path, so what aiohttp wrote
must still be written: framing, ``Date``, ``Connection`` as the request's version asks, no
body or length where HTTP forbids them, and no header that could start another.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from types import SimpleNamespace

import pytest
from aiohttp.http import HttpVersion10, HttpVersion11

from gateway.edge.protocol import WRITE_JOINED, WholeResponse
from tests.gateway.conftest import parse_raw, run_async
from tests.support.raw_service import serve_raw


class Transport:
    def __init__(self, closing: bool = False) -> None:
        self.sent: list[bytes] = []
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def writelines(self, parts) -> None:
        self.sent.append(b"".join(parts))


class Writer:
    def __init__(self) -> None:
        self.drained = 0

    async def drain(self) -> None:
        self.drained += 1


def _request(*, method: str = "GET", version=HttpVersion11, keep_alive: bool = True,
             transport: Transport | None = None) -> SimpleNamespace:
    return SimpleNamespace(method=method, version=version, keep_alive=keep_alive, writer=Writer(),
                           transport=transport if transport is not None else Transport())


def _written(response: WholeResponse, request: SimpleNamespace) -> tuple[str, list[str], bytes]:
    run_async(response.prepare(request))
    run_async(response.write_eof())
    data = b"".join(request.transport.sent)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return status_line, lines, body


def _names(lines: list[str]) -> list[str]:
    return [line.split(":", 1)[0].lower() for line in lines]


def test_a_whole_answer_is_framed_by_its_length_and_keeps_the_connection():
    response = WholeResponse(200, [("Content-Type", "application/json"), ("Date", "Mon, 07 Dec 2026 15:00:00 GMT"),
                                   ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b'{"id": 1}')
    request = _request()
    status_line, lines, body = _written(response, request)
    assert status_line == "HTTP/1.1 200 OK"
    assert "Content-Length: 9" in lines and body == b'{"id": 1}'
    assert lines.count("Set-Cookie: a=1") == 1 and lines.count("Set-Cookie: b=2") == 1
    assert _names(lines).count("date") == 1  # the service's own, not a second one
    assert "connection" not in _names(lines)  # HTTP/1.1 keeps the connection by default
    assert response.keep_alive is True
    assert len(request.transport.sent) == 1  # head and body in one write
    assert request.writer.drained == 1  # and the wait for a slow client to take it


def test_date_and_content_type_are_added_when_the_service_sent_none():
    _, lines, _ = _written(WholeResponse(200, [], b"x"), _request())
    assert "Content-Type: application/octet-stream" in lines
    assert _names(lines).count("date") == 1
    _, empty, _ = _written(WholeResponse(200, [], b""), _request())
    assert "Content-Length: 0" in empty and "content-type" not in _names(empty)


def test_connection_as_the_request_asks():
    _, lines, _ = _written(WholeResponse(200, [], b"x"), _request(keep_alive=False))
    assert "Connection: close" in lines
    status_line, lines, _ = _written(WholeResponse(200, [], b"x"), _request(version=HttpVersion10))
    assert status_line == "HTTP/1.0 200 OK" and "Connection: keep-alive" in lines
    _, lines, _ = _written(WholeResponse(200, [], b"x"), _request(version=HttpVersion10, keep_alive=False))
    assert "Connection: close" in lines  # HTTP/1.0's default, said all the same


def test_force_close_overrides_the_request():
    response = WholeResponse(200, [], b"x")
    response.force_close()
    _, lines, _ = _written(response, _request())
    assert "Connection: close" in lines and response.keep_alive is False


@pytest.mark.parametrize("status", [204, 304, 101])
def test_no_body_and_no_length_where_http_forbids_them(status):
    status_line, lines, body = _written(WholeResponse(status, [], None, head_length=12), _request())
    assert status_line.startswith(f"HTTP/1.1 {status} ")
    assert "content-length" not in _names(lines) and body == b""


def test_head_answers_carry_their_length_and_no_body():
    _, lines, body = _written(WholeResponse(200, [], None, head_length=1234), _request(method="HEAD"))
    assert "Content-Length: 1234" in lines and body == b""
    _, lines, _ = _written(WholeResponse(200, [], None), _request(method="HEAD"))
    assert "content-length" not in _names(lines)
    # A problem answered to a HEAD: the document's length, not the document.
    _, lines, body = _written(WholeResponse(401, [("Content-Type", "application/problem+json")], b"{}" * 10),
                              _request(method="HEAD"))
    assert "Content-Length: 20" in lines and body == b""


def test_a_tab_in_a_header_value_is_kept():
    _, lines, _ = _written(WholeResponse(200, [("X-Tab", "a\tb")], b""), _request())
    assert "X-Tab: a\tb" in lines


def test_a_service_s_header_bytes_pass_unchanged():
    # upstream_http decodes a service's head latin-1: each byte one character, written back as that byte.
    _, lines, _ = _written(WholeResponse(200, [("X-Name", b"caf\xe9 \xff".decode("latin-1"))], b"x"), _request())
    assert "X-Name: caf\xe9 \xff" in lines  # _written decodes latin-1: one byte each, not UTF-8's two


def test_a_header_beyond_latin1_is_written_as_utf8():
    request = _request()
    run_async(WholeResponse(200, [("X-Gateway", "\u4e2d")], b"x").prepare(request))
    assert b"X-Gateway: \xe4\xb8\xad\r\n" in request.transport.sent[0]  # as aiohttp's writer did


def test_an_unknown_status_has_an_empty_reason():
    status_line, _, _ = _written(WholeResponse(599, [], b""), _request())
    assert status_line == "HTTP/1.1 599 "


@pytest.mark.parametrize("header", [("X-Split", "a\r\nSet-Cookie: evil=1"), ("X-Cr", "a\rb"), ("X-Lf", "a\nb"),
                                    ("X-Bad\r\nName", "v"), ("X-Nul", "a\x00b"), ("X-Del", "a\x7fb"),
                                    ("X-Esc", "a\x1bb"), ("X-Bad\x0bName", "v")])
def test_a_header_with_a_control_character_is_refused_and_nothing_is_sent(header):
    request = _request()
    with pytest.raises(ValueError, match="control character"):
        run_async(WholeResponse(200, [header], b"x").prepare(request))
    assert request.transport.sent == []


@pytest.mark.parametrize("transport", [None, Transport(closing=True)])
def test_a_client_gone_is_a_connection_error(transport):
    request = _request()
    request.transport = transport
    with pytest.raises(ConnectionResetError):
        run_async(WholeResponse(200, [], b"x").prepare(request))


def test_prepared_once_and_large_bodies_unchanged():
    body = bytes(range(256)) * (WRITE_JOINED // 256 + 3)
    response = WholeResponse(200, [("Content-Type", "application/octet-stream")], body)
    request = _request()
    run_async(response.prepare(request))
    run_async(response.prepare(request))
    assert len(request.transport.sent) == 1
    assert request.transport.sent[0].partition(b"\r\n\r\n")[2] == body


# -- through a real edge ----------------------------------------------------------------------

def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_service_s_header_bytes_reach_the_client_unchanged(start_edge, tmp_path):
    path = str(tmp_path / "payment.sock")
    with serve_raw(path, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\nok"):
        edge = start_edge(GATEWAY_UPSTREAM_SOCKETS={"payment": path})
        raw = (f"GET /payment/x HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\nConnection: close\r\n"
               f"Authorization: Bearer {edge.tokens.token(aud='xsn:payment')}\r\n\r\n").encode()
        answer = _exchange(edge.port, raw)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nok")
    assert b"\r\nX-Name: caf\xe9\r\n" in answer  # the byte the service sent, not UTF-8's c3 a9


def test_an_http10_client_gets_an_http10_answer_and_the_connection_closes(start_edge):
    edge = start_edge()
    raw = (f"GET /seal/x HTTP/1.0\r\nHost: 127.0.0.1:{edge.port}\r\n"
           f"Authorization: Bearer {edge.tokens.token(aud='xsn:seal')}\r\n\r\n").encode()
    answer = _exchange(edge.port, raw)  # returns only once the edge closes the connection
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    status, headers, body = parse_raw(answer)
    assert int(headers["content-length"]) == len(body) and json.loads(body)["path"] == "/x"
    assert headers["x-request-id"]  # the Date here is the service's own: the gateway's is tested above


def _answer(sock: socket.socket, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One answer read off a kept-alive connection, by its Content-Length (nothing after it is
    read: the edge sends the next answer only when asked)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the edge closed the connection"
        data += chunk
    status, headers, body = parse_raw(data)
    while not head_only and len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the edge closed the connection mid-body"
        body += chunk
    return status, headers, body


def test_kept_alive_connection_carries_several_answers(start_edge):
    edge = start_edge()
    auth = f"Host: 127.0.0.1:{edge.port}\r\nAuthorization: Bearer {edge.tokens.token(aud='xsn:seal')}\r\n"
    answers = []
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        for request in [f"GET /seal/n/{i} HTTP/1.1\r\n{auth}\r\n" for i in range(3)] + [
                f"GET /seal/livez HTTP/1.1\r\n{auth}\r\n", f"HEAD /seal/livez HTTP/1.1\r\n{auth}\r\n"]:
            sock.sendall(request.encode())
            answers.append(_answer(sock, head_only=request.startswith("HEAD")))
    assert [status for status, _, _ in answers] == [200] * 5
    assert all("connection" not in headers for _, headers, _ in answers)  # none said it would close
    assert [json.loads(body)["path"] for _, _, body in answers[:3]] == ["/n/0", "/n/1", "/n/2"]
    (_, got_headers, got), (_, head_headers, head_body) = answers[3:]
    assert head_body == b""  # the same answer without its body
    assert int(head_headers["content-length"]) == int(got_headers["content-length"]) == len(got) > 0
    assert len({r["request_id"] for r in edge.records()}) == 5


def test_problem_answers_are_whole_responses_with_their_headers(start_edge):
    edge = start_edge()
    raw = f"GET /seal/seals HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = parse_raw(_exchange(edge.port, raw))
    assert status == 401 and json.loads(body)["code"] == "token_missing"
    assert headers["www-authenticate"] == 'Bearer realm="xsn"' and headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/problem+json" and int(headers["content-length"]) == len(body)
    assert headers["x-request-id"] == json.loads(body)["request_id"] and headers["date"]
    # A HEAD gets the same head without the document.
    raw = f"HEAD /seal/seals HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\nConnection: close\r\n\r\n".encode()
    status, head_headers, head_body = parse_raw(_exchange(edge.port, raw))
    assert status == 401 and head_body == b""
    assert int(head_headers["content-length"]) == int(headers["content-length"])


def test_a_problem_leaves_the_connection_open_unless_the_request_cannot_be_trusted(start_edge):
    edge = start_edge()
    host = f"127.0.0.1:{edge.port}"
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(f"GET /seal/seals HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        status, headers, body = parse_raw(answer)
        while len(body) < int(headers["content-length"]):
            body += sock.recv(65536)
        assert status == 401 and "connection" not in headers
        # The same connection carries the next request.
        sock.sendall(f"GET /seal/livez HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert parse_raw(rest)[0] == 200
    raw = f"GET /seal/%2e%2e/x HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n\r\n".encode()
    status, headers, _ = parse_raw(_exchange(edge.port, raw))  # returns once the edge closes
    assert status == 400 and headers["connection"] == "close"


def test_a_client_that_does_not_read_holds_up_its_own_answers(start_edge, serve_app, tmp_path):
    """Pipelined requests for answers of 200 kB (read whole, so ``WholeResponse``) from a client
    that reads nothing: the edge waits for the client to take each answer (the writer's drain)
    instead of asking the service for all of them and holding them in memory."""
    from flask import Flask

    hits = []
    app = Flask("big")

    @app.route("/<path:path>")
    def big(path: str):
        hits.append(path)
        return b"x" * 200_000, 200, {"Content-Type": "application/octet-stream"}

    path = str(tmp_path / "payment.sock")
    serve_app(app, unix_socket=path)
    edge = start_edge(GATEWAY_UPSTREAM_SOCKETS={"payment": path})
    token = edge.tokens.token(aud="xsn:payment")
    request = (f"GET /payment/big HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connecting: a small window
    try:
        sock.connect(("127.0.0.1", edge.port))
        # 30 MB of answers asked for. An edge that stops reading the client's requests is
        # a stall too (what is asserted below is what the service was asked): a send that
        # times out ends the wait instead of hanging the suite.
        sock.settimeout(5.0)
        with contextlib.suppress(TimeoutError):
            sock.sendall(request * 150)
        time.sleep(2.0)
        stalled = hits.count("big")
    finally:
        sock.close()
    # What the socket buffers hold (a few MB) is answered; the rest waits for the client
    # (measured: 21 of 150 asked of the service with the drain, all 150 without it).
    assert 0 < stalled < 100, stalled
