"""What the circuit breaker counts of what ``Upstream.send`` meets, against scripted servers: a
service's own answers never (a 503 problem document or an HTML 5xx page, one or a burst),
transport failures always (a dead service opens it), connections reset together once, and a
half-open probe whose client went away frees its slot. Retries and the deadline:
``test_upstream_send.py``; the breaker alone: ``test_upstreams.py``."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from gateway.edge.problems import CircuitOpen, UpstreamUnavailable
from gateway.edge.upstreams import Breaker
from tests.gateway.conftest import run_async
from tests.gateway.scripted_upstreams import answer_and_close, hang, serve_answers, serving, upstream_to
from tests.support.suite import free_port

PROBLEM_503 = (b'HTTP/1.1 503 SERVICE UNAVAILABLE\r\nContent-Type: application/problem+json\r\nRetry-After: 1\r\n'
               b'Content-Length: 48\r\n\r\n{"status": 503, "code": "database_busy", "x": 1}')
HTML_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\nno backend"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_service_that_answers_a_503_problem_is_reachable(method):
    """A well-formed problem document is the service's own answer: passed on once (not retried:
    a busy database would see every request three times), and the breaker stays closed."""
    async def scenario():
        server, port, received, _ = await serve_answers([PROBLEM_503] * 4)
        upstream = upstream_to(port, retries=2, breaker=Breaker(failures=2))
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
        upstream = upstream_to(port, retries=2, breaker=Breaker(failures=2))
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
        handled: list[asyncio.StreamWriter] = []
        all_in = asyncio.Event()

        async def group_commit(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)
            arrived.append(writer)
            if len(arrived) == 6:
                all_in.set()
            await all_in.wait()
            await answer_and_close(writer, PROBLEM_503)
            handled.append(writer)

        async with serving(group_commit) as port:
            upstream = upstream_to(port, breaker=Breaker(failures=2))

            async def one() -> int:
                response = await upstream.send("POST", "/verify", [], b"{}", 5)
                await response.read(5)
                response.release()
                return response.status

            statuses = await asyncio.gather(*(one() for _ in range(6)))
            await upstream.close()
        while len(handled) < 6:  # every server side closed before the loop ends
            await asyncio.sleep(0.01)
        return statuses, upstream.breaker.state

    assert run_async(scenario()) == ([503] * 6, "closed")


def test_a_dead_service_still_opens_the_breaker():
    async def scenario():
        upstream = upstream_to(free_port(), retries=0, breaker=Breaker(failures=2))  # nothing listens there
        for _ in range(2):
            with pytest.raises(UpstreamUnavailable):
                await upstream.send("POST", "/", [], b"", 5)
        with pytest.raises(CircuitOpen):
            await upstream.send("POST", "/", [], b"", 5)
        return upstream.health()

    assert run_async(scenario())["state"] == "open"


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

        async with serving(dying_worker) as port:
            upstream = upstream_to(port, retries=2, breaker=Breaker(failures=2))

            async def one() -> None:
                with pytest.raises(UpstreamUnavailable):
                    await upstream.send("GET", "/", [], b"", 5)

            await asyncio.gather(*(one() for _ in range(6)))
            await upstream.close()
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
                await hang(writer, stop)  # the probe hangs
            else:
                await answer_and_close(writer, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

        async with serving(handle) as port:
            upstream = upstream_to(port, retries=0, breaker=Breaker(failures=1, open_s=0.05))
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

    assert run_async(scenario()) == (204, "closed")
