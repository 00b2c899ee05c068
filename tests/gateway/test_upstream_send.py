"""``Upstream.send`` against scripted servers: what is tried again (a connection not made, the
keep-alive race; never an HTTP answer, nor a request that went out on a fresh connection), and
one deadline for all attempts. What the circuit breaker counts: ``test_upstream_breaker_counts.py``."""

from __future__ import annotations

import asyncio

import pytest

from gateway.edge.problems import UpstreamTimeout, UpstreamUnavailable
from gateway.edge.upstream_http import UpstreamError
from gateway.edge.upstreams import Breaker
from tests.gateway.conftest import run_async
from tests.gateway.scripted_upstreams import (
    OK_A,
    answers_once_then,
    hang,
    pooled_upstream,
    serve_answers,
    upstream_to,
)


def test_a_stale_pooled_connection_is_retried_for_idempotent_methods():
    """The keep-alive race itself: the service closes a pooled connection as the next GET
    arrives on it, with no answer (so the pool cannot have seen it closed). The GET is sent once
    more on a fresh connection, which answers; the breaker counts nothing."""
    async def scenario():
        heads: list[list[bytes]] = []
        closed: list[asyncio.StreamWriter] = []

        async def handle(reader, writer):
            seen: list[bytes] = []
            heads.append(seen)
            while True:
                try:
                    seen.append(await reader.readuntil(b"\r\n\r\n"))
                except asyncio.IncompleteReadError:
                    break
                if len(heads) == 1 and len(seen) == 2:
                    break  # its idle timer fires as the second request arrives: closed, no answer
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + (b"a" if len(heads) == 1 else b"b"))
                await writer.drain()
            writer.close()
            await writer.wait_closed()
            closed.append(writer)

        async with pooled_upstream(handle, retries=0, breaker=Breaker(failures=1)) as (upstream, first):
            assert first == b"a"
            second = await upstream.send("GET", "/again", [], b"", 5)
            body = await second.read(5)
            second.release()
        while len(closed) < 2:  # every server side closed before the loop ends
            await asyncio.sleep(0.01)
        return body, [[h.split(b" ")[1] for h in seen] for seen in heads], upstream.health()

    body, heads, health = run_async(scenario())
    assert body == b"b"  # from the fresh connection
    assert heads == [[b"/", b"/again"], [b"/again"]]  # the service saw the GET twice, once per connection
    assert (health["state"], health["failures"]) == ("closed", 0)


def test_post_is_not_retried():
    async def scenario():
        server, port, received, _ = await serve_answers([b""], close_after=True)  # closes without answering
        upstream = upstream_to(port, retries=2)
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("POST", "/pay", [], b"{}", 5)
        finally:
            server.close()
            await upstream.close()
        return received

    assert len(run_async(scenario())) == 1  # the service saw the payment request once


def test_a_request_on_a_fresh_connection_closed_before_its_answer_is_not_retried():
    """A hung worker its server killed: the connection closes after the request went out and
    before any answer. The request may have acted and would hang another worker: sent once."""
    async def scenario():
        server, port, received, _ = await serve_answers([b""] * 3, close_after=True)  # reads it, closes, no answer
        upstream = upstream_to(port, retries=2, breaker=Breaker(failures=5))
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/slow", [], b"", 5)
        finally:
            await upstream.close()
            server.close()
        return len(received), upstream.breaker.consecutive

    assert run_async(scenario()) == (1, 1)


@pytest.mark.parametrize(("method", "attempts"), [("GET", 3), ("POST", 1)])
def test_a_refused_connection_is_retried_for_idempotent_methods_only(method, attempts):
    """A GET is tried ``retries`` more times when no connection could be made; a POST is tried
    once, even though nothing went out (retries are for idempotent methods only, the module's
    rule). Either way the failure is counted once."""
    async def scenario():
        made = 0
        upstream = upstream_to(1, retries=2, breaker=Breaker(failures=5))
        original = upstream.pool._connection

        async def counted(*args):
            nonlocal made
            made += 1
            return await original(*args)

        upstream.pool._connection = counted
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send(method, "/", [], b"{}" if method == "POST" else b"", 5)
        finally:
            await upstream.close()
        return made, upstream.breaker.consecutive

    assert run_async(scenario()) == (attempts, 1)


def test_a_post_on_a_pooled_connection_the_service_had_closed_is_not_a_failure():
    """The keep-alive race for a method that is not retried: the service closes a kept-alive
    connection as the POST goes out on it. The client is told (502), and the breaker counts
    nothing: the service did not fail, it had closed an idle connection."""
    async def scenario():
        heads: list[bytes] = []
        closes_as_the_post_arrives = answers_once_then(b"", heads)
        async with pooled_upstream(closes_as_the_post_arrives, breaker=Breaker(failures=1)) as (upstream, _first):
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("POST", "/pay", [], b"{}", 5)
        return len(heads), upstream.health()

    sent, health = run_async(scenario())
    assert sent == 2  # once each: the POST is not tried again
    assert (health["state"], health["failures"]) == ("closed", 0)


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 OK\r\nContent-", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000],
                         ids=["head-cut-short", "head-over-limit"])
def test_an_answer_begun_on_a_pooled_connection_is_not_retried(answer):
    """Some of the answer arrived before the pooled connection broke: the service took the
    request, so it is not the keep-alive race; sent once, and a failure for the breaker."""
    async def scenario():
        heads: list[bytes] = []
        async with pooled_upstream(answers_once_then(answer, heads), retries=2) as (upstream, _first):
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/", [], b"", 5)
        return len(heads), upstream.breaker.consecutive

    assert run_async(scenario()) == (2, 1)


def test_attempts_share_one_deadline():
    """A pooled connection the service closes 0.3 s after the request (retried on a fresh one, as
    the keep-alive race is), then a fresh one that hangs: the client waits the route's timeout
    once in all, not once per attempt."""
    async def scenario():
        stop = asyncio.Event()
        served = 0

        async def handle(reader, writer):
            nonlocal served
            served += 1
            first = served == 1
            await reader.readuntil(b"\r\n\r\n")
            if not first:
                await hang(writer, stop)
                return
            writer.write(OK_A)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.3)
            writer.close()

        async with pooled_upstream(handle, retries=2) as (upstream, _first):
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                with pytest.raises(UpstreamTimeout):
                    await upstream.send("GET", "/", [], b"", 0.6)
                return loop.time() - started, served
            finally:
                stop.set()

    elapsed, served = run_async(scenario())
    assert served == 2
    assert elapsed < 0.85  # 0.6 s in all; 0.3 s + 0.6 s with a timeout per attempt


def test_a_deadline_spent_on_refused_connections_is_unreachable_not_a_timeout():
    """Refused, then the backoff outlasts the route's timeout: the service refused rather than
    hung, so 502 ``upstream_unavailable`` (counted), not 504."""
    async def scenario():
        upstream = upstream_to(1, retries=2, breaker=Breaker(failures=5))
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/", [], b"", 0.03)
        finally:
            await upstream.close()
        return upstream.breaker.consecutive

    assert run_async(scenario()) == 1


def test_a_deadline_spent_on_the_keep_alive_race_counts_nothing():
    """The last attempt met the keep-alive race (uncounted) and the deadline is gone before the
    next: 502, and still no failure for the breaker."""
    async def scenario():
        upstream = upstream_to(1, breaker=Breaker(failures=1))

        async def race(*args, **kwargs):
            await asyncio.sleep(0.05)  # longer than the route's timeout
            raise UpstreamError("closed as the request went out", reused=True)

        upstream.pool.request = race
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/", [], b"", 0.03)
        finally:
            await upstream.close()
        return upstream.health()

    health = run_async(scenario())
    assert (health["state"], health["failures"]) == ("closed", 0)
