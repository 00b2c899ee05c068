"""``Upstream.send`` against scripted servers: what is tried again (a connection not made, the
keep-alive race; never an HTTP answer, nor a request that went out on a fresh connection), one
deadline for all attempts, and what the circuit breaker counts (transport failures, a burst once)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from gateway.edge.problems import CircuitOpen, UpstreamTimeout, UpstreamUnavailable
from gateway.edge.upstream_http import UpstreamError
from gateway.edge.upstreams import Breaker, Upstream
from tests.gateway.conftest import run_async, serve_answers


async def _with_a_pooled_connection(handle, **options) -> tuple[asyncio.Server, Upstream, bytes]:
    """``handle`` served on a loopback port, an ``Upstream`` to it (``options``) and one GET
    answered and released, so that its connection is pooled: ``(server, upstream, first body)``."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    upstream = Upstream("x", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", **options)
    first = await upstream.send("GET", "/", [], b"", 5)
    body = await first.read(5)
    first.release()  # pooled, still open
    return server, upstream, body


async def _close(server: asyncio.Server, upstream: Upstream) -> None:
    await upstream.close()
    server.close()
    await server.wait_closed()


def test_a_stale_pooled_connection_is_retried_for_idempotent_methods():
    """The keep-alive race itself: the service closes a pooled connection as the next GET
    arrives on it, with no answer (so the pool cannot have seen it closed). The GET is sent once
    more on a fresh connection, which answers; the breaker counts nothing."""
    async def scenario():
        heads: list[list[bytes]] = []

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

        closed: list[asyncio.StreamWriter] = []
        server, upstream, first = await _with_a_pooled_connection(handle, retries=0, breaker=Breaker(failures=1))
        assert first == b"a"
        second = await upstream.send("GET", "/again", [], b"", 5)
        body = await second.read(5)
        second.release()
        await _close(server, upstream)
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
        upstream = Upstream("x", f"http://127.0.0.1:{port}", retries=2)
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("POST", "/pay", [], b"{}", 5)
        finally:
            server.close()
            await upstream.close()
        return received

    assert len(run_async(scenario())) == 1  # the service saw the payment request once


PROBLEM_503 = (b'HTTP/1.1 503 SERVICE UNAVAILABLE\r\nContent-Type: application/problem+json\r\nRetry-After: 1\r\n'
               b'Content-Length: 48\r\n\r\n{"status": 503, "code": "database_busy", "x": 1}')
HTML_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\nno backend"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_service_that_answers_a_503_problem_is_reachable(method):
    """A well-formed problem document is the service's own answer: passed on once (not retried:
    a busy database would see every request three times), and the breaker stays closed."""
    async def scenario():
        server, port, received, _ = await serve_answers([PROBLEM_503] * 4)
        upstream = Upstream("x", f"http://127.0.0.1:{port}", retries=2, breaker=Breaker(failures=2))
        statuses = []
        for _ in range(4):
            response = await upstream.send(method, "/verify", [], b"{}" if method == "POST" else b"", 5)
            assert await response.read(5) == PROBLEM_503.partition(b"\r\n\r\n")[2]
            statuses.append(response.status)
            response.release()
        await upstream.close()
        server.close()
        return statuses, len(received), upstream.health()

    statuses, sent, health = run_async(scenario())
    assert statuses == [503] * 4
    assert sent == 4
    assert health["state"] == "closed" and health["failures"] == 0


@pytest.mark.parametrize("answer", [HTML_503, HTML_503.replace(b"503 Service Unavailable", b"502 Bad Gateway")],
                         ids=["503", "502"])
def test_an_html_5xx_page_is_the_services_answer(answer):
    """A 5xx that is not a problem document (a console login page while the IdP is down) is the
    service's answer all the same: passed on once, never retried, and the breaker stays closed."""
    async def scenario():
        server, port, received, _ = await serve_answers([answer] * 6)
        upstream = Upstream("x", f"http://127.0.0.1:{port}", retries=2, breaker=Breaker(failures=2))
        for _ in range(6):
            response = await upstream.send("GET", "/console/login", [], b"", 5)
            assert await response.read(5) == b"no backend"
            response.release()
        await upstream.close()
        server.close()
        return len(received), upstream.health()

    sent, health = run_async(scenario())
    assert sent == 6
    assert (health["state"], health["failures"]) == ("closed", 0)


def test_a_burst_of_concurrent_problem_answers_keeps_the_breaker_closed():
    """Six concurrent requests of one failed group commit, each told 503 at once: answers, so
    no failure at all (a burst of real failures counting once: the reset test below)."""
    async def scenario():
        arrived: list[asyncio.StreamWriter] = []
        all_in = asyncio.Event()

        async def group_commit(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            arrived.append(writer)
            if len(arrived) == 6:
                all_in.set()
            await all_in.wait()
            writer.write(PROBLEM_503)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            handled.append(writer)

        handled: list[asyncio.StreamWriter] = []
        server = await asyncio.start_server(group_commit, "127.0.0.1", 0)
        upstream = Upstream("x", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
                            breaker=Breaker(failures=2))

        async def one() -> int:
            response = await upstream.send("POST", "/verify", [], b"{}", 5)
            await response.read(5)
            response.release()
            return response.status

        statuses = await asyncio.gather(*(one() for _ in range(6)))
        await upstream.close()
        server.close()
        await server.wait_closed()
        while len(handled) < 6:  # every server side closed before the loop ends
            await asyncio.sleep(0.01)
        return statuses, upstream.breaker.state

    assert run_async(scenario()) == ([503] * 6, "closed")


def test_a_dead_service_still_opens_the_breaker():
    async def scenario():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()  # nothing listens there now
        upstream = Upstream("x", f"http://127.0.0.1:{port}", retries=0, breaker=Breaker(failures=2))
        for _ in range(2):
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("POST", "/", [], b"", 5)
        with pytest.raises(CircuitOpen):
            await upstream.send("POST", "/", [], b"", 5)
        return upstream.health()

    assert run_async(scenario())["state"] == "open"


def test_a_request_on_a_fresh_connection_closed_before_its_answer_is_not_retried():
    """A hung worker its server killed: the connection closes after the request went out and
    before any answer. The request may have acted and would hang another worker: sent once."""
    async def scenario():
        server, port, received, _ = await serve_answers([b""] * 3, close_after=True)  # reads it, closes, no answer
        upstream = Upstream("x", f"http://127.0.0.1:{port}", retries=2, breaker=Breaker(failures=5))
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
        upstream = Upstream("x", "http://127.0.0.1:1", retries=2, breaker=Breaker(failures=5))
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
            if first:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
                await writer.drain()
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(0.3)
            else:
                await stop.wait()  # hung
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        upstream = Upstream("x", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", retries=2)
        response = await upstream.send("GET", "/", [], b"", 5)
        await response.read(5)
        response.release()  # pooled
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(UpstreamTimeout):
                await upstream.send("GET", "/", [], b"", 0.6)
            return loop.time() - started, served
        finally:
            stop.set()
            await upstream.close()
            server.close()
            await server.wait_closed()

    elapsed, served = run_async(scenario())
    assert served == 2
    assert elapsed < 0.85  # 0.6 s in all; 0.3 s + 0.6 s with a timeout per attempt


def test_a_post_on_a_pooled_connection_the_service_had_closed_is_not_a_failure():
    """The keep-alive race for a method that is not retried: the service closes a kept-alive
    connection as the POST goes out on it. The client is told (502), and the breaker counts
    nothing: the service did not fail, it had closed an idle connection."""
    async def scenario():
        heads: list[bytes] = []

        async def handle(reader, writer):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
            await writer.drain()
            heads.append(await reader.readuntil(b"\r\n\r\n"))  # what its idle timer closes
            writer.close()

        server, upstream, _first = await _with_a_pooled_connection(handle, breaker=Breaker(failures=1))
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("POST", "/pay", [], b"{}", 5)
        finally:
            await _close(server, upstream)
        return len(heads), upstream.health()

    sent, health = run_async(scenario())
    assert sent == 2  # once each: the POST is not tried again
    assert (health["state"], health["failures"]) == ("closed", 0)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, as a worker that dies does to its connections."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def test_connections_reset_together_count_once_through_upstream():
    """Six requests in flight on the connections of one worker that dies, each reset: one
    failure for the breaker (their tickets), not six (which would open it at ``failures=2``)."""
    async def scenario():
        arrived: list[asyncio.StreamWriter] = []
        all_in = asyncio.Event()

        async def dying_worker(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            arrived.append(writer)
            if len(arrived) == 6:
                all_in.set()
            await all_in.wait()
            _reset(writer)

        server = await asyncio.start_server(dying_worker, "127.0.0.1", 0)
        upstream = Upstream("x", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
                            retries=2, breaker=Breaker(failures=2))

        async def one() -> None:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/", [], b"", 5)

        await asyncio.gather(*(one() for _ in range(6)))
        await upstream.close()
        server.close()
        await server.wait_closed()
        return len(arrived), upstream.health()

    sent, health = run_async(scenario())
    assert sent == 6  # each once: a reset after the request went out is not retried
    assert (health["state"], health["failures"]) == ("closed", 1)


def test_a_probe_cancelled_through_send_frees_the_probe_slot():
    """The half-open probe's client goes away while it waits for the service: the next request
    is let through as the probe (not refused for 5 s), and its answer closes the breaker."""
    async def scenario():
        seen: list[int] = []
        probe_in = asyncio.Event()
        stop = asyncio.Event()

        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            seen.append(len(seen))
            if len(seen) == 1:
                writer.close()  # a failure: the breaker opens
            elif len(seen) == 2:
                probe_in.set()
                await stop.wait()  # the probe hangs
                writer.close()
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                await writer.drain()
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        upstream = Upstream("x", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
                            retries=0, breaker=Breaker(failures=1, open_s=0.05))
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/", [], b"", 5)
            with pytest.raises(CircuitOpen):
                await upstream.send("GET", "/", [], b"", 5)
            await asyncio.sleep(0.06)
            probe = asyncio.ensure_future(upstream.send("GET", "/", [], b"", 5))
            await probe_in.wait()
            with pytest.raises(CircuitOpen):
                await upstream.send("GET", "/", [], b"", 5)  # one probe at a time
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            response = await upstream.send("GET", "/", [], b"", 5)
            response.release()
            return response.status, upstream.breaker.state
        finally:
            stop.set()
            await upstream.close()
            server.close()
            await server.wait_closed()

    assert run_async(scenario()) == (204, "closed")


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 OK\r\nContent-", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000],
                         ids=["head-cut-short", "head-over-limit"])
def test_an_answer_begun_on_a_pooled_connection_is_not_retried(answer):
    """Some of the answer arrived before the pooled connection broke: the service took the
    request, so it is not the keep-alive race; sent once, and a failure for the breaker."""
    async def scenario():
        heads: list[bytes] = []

        async def handle(reader, writer):
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
            await writer.drain()
            try:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
            except asyncio.IncompleteReadError:
                writer.close()
                return
            writer.write(answer)
            await writer.drain()
            writer.close()

        server, upstream, _first = await _with_a_pooled_connection(handle, retries=2)
        try:
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("GET", "/", [], b"", 5)
        finally:
            await _close(server, upstream)
        return len(heads), upstream.breaker.consecutive

    assert run_async(scenario()) == (2, 1)


def test_a_deadline_spent_on_refused_connections_is_unreachable_not_a_timeout():
    """Refused, then the backoff outlasts the route's timeout: the service refused rather than
    hung, so 502 ``upstream_unavailable`` (counted), not 504."""
    async def scenario():
        upstream = Upstream("x", "http://127.0.0.1:1", retries=2, breaker=Breaker(failures=5))
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
        upstream = Upstream("x", "http://127.0.0.1:1", breaker=Breaker(failures=1))

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
