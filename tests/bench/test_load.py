"""bench._load drives wrk: bodies, headers and unique keys arrive byte for byte; figures are read."""

from __future__ import annotations

import shutil

import pytest
from werkzeug.wrappers import Request

from bench._load import lua_string, paced_lua, wrk

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


@pytest.fixture
def recorder(serve_app):
    """``(URL, what it received)``: a server that keeps each request's method, Idempotency-Key
    and body, and answers 200 at ``/ok``, 404 elsewhere."""
    seen: list[tuple[str, str | None, bytes]] = []

    def app(environ, start_response):
        request = Request(environ)
        seen.append((request.method, request.headers.get("Idempotency-Key"), request.get_data()))
        start_response("200 OK" if request.path == "/ok" else "404 Not Found", [("Content-Length", "0")])
        return [b""]

    return serve_app(app), seen


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
