"""bench._load drives wrk: bodies, headers and unique keys arrive byte for byte; figures are read."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench._load import lua_string, paced_lua, wrk

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.command, self.headers.get("Idempotency-Key"), body))
        status = 200 if self.path == "/ok" else 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_post_bodies_and_unique_keys_arrive_intact(recorder):
    url, seen = recorder
    body = '{"a": "quote \\" backslash \\\\ 中文"}\n'.encode()
    result = wrk(url + "/ok", duration=1, connections=2, threads=2, method="POST", body=body,
                 headers={"Content-Type": "application/json"}, unique_header="Idempotency-Key")
    assert result.requests > 0 and result.ok
    assert result.requests_per_s > 0 and 0 < result.p50_ms <= result.p99_ms
    assert result.wrk_cpu_s > 0
    assert {method for method, _, _ in seen} == {"POST"}
    assert {received for _, _, received in seen} == {body}
    keys = [key for _, key, _ in seen]
    assert None not in keys and len(set(keys)) == len(keys)


def test_responses_outside_2xx_are_counted(recorder):
    url, _ = recorder
    result = wrk(url + "/missing", duration=1, connections=1, threads=1, method="POST", body=b"x")
    assert result.non2xx == result.requests > 0 and not result.ok


def test_lua_string_escapes_every_awkward_byte():
    assert lua_string('a"b\\c\n') == '"a\\034b\\092c\\010"'
    assert lua_string(b"\xe4") == '"\\228"'


def test_paced_connections_offer_about_their_rate(recorder):
    """4 connections pausing 50 ms on average offer ~80 requests/s (a few ms of latency each
    lower it); unpaced, the same server answers many times that."""
    url, _ = recorder
    paced = wrk(url + "/ok", duration=2, connections=4, threads=2, method="POST", body=b"x", lua=paced_lua(50))
    unpaced = wrk(url + "/ok", duration=1, connections=4, threads=2, method="POST", body=b"x")
    assert paced.ok and unpaced.ok
    assert 40 <= paced.requests_per_s <= 100
    assert unpaced.requests_per_s > 3 * paced.requests_per_s


def test_paced_lua_refuses_a_think_time_that_is_not_positive():
    with pytest.raises(ValueError):
        paced_lua(0)
