"""The upstream HTTP/1.1 client (``upstream_http``: ``Pool`` and ``Response``) against scripted
servers: framing, keep-alive, flow control, timeouts, Unix sockets."""

from __future__ import annotations

import asyncio

import pytest

from gateway.edge.problems import UpstreamUnavailable
from gateway.edge.upstream_http import Pool, UpstreamError
from tests.gateway.conftest import run_async
from tests.gateway.scripted_upstreams import answer_and_close, hang, serve_answers, serving, upstream_to


def test_content_length_chunked_and_close_delimited_bodies():
    async def scenario():
        server, port, received, _ = await serve_answers([
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 201 Created\r\n\r\nuntil close",
        ])
        pool = Pool("127.0.0.1", port)
        bodies, statuses = [], []
        for method in ("GET", "GET", "POST"):
            response = await pool.request(method, "/x?y=1", [("X-Req", "1")], b"body" if method == "POST" else b"",
                                          timeout_s=5)
            statuses.append(response.status)
            bodies.append(await response.read(5))
            response.release()
        pool.close()
        server.close()
        return statuses, bodies, received, len(pool.idle)

    statuses, bodies, received, idle = run_async(scenario())
    assert statuses == [200, 200, 201]
    assert bodies == [b"hello", b"abcde", b"until close"]
    assert received[0].startswith(b"GET /x?y=1 HTTP/1.1\r\n") and b"X-Req: 1" in received[0]
    assert received[2].endswith(b"Content-Length: 4\r\n\r\nbody")


def test_keep_alive_connections_are_reused():
    async def scenario():
        server, port, _, connections = await serve_answers([b"HTTP/1.1 204 No Content\r\n\r\n"] * 3)
        pool = Pool("127.0.0.1", port)
        for _ in range(3):
            response = await pool.request("GET", "/", [], b"", timeout_s=5)
            response.release()
        pool.close()
        server.close()
        return len(connections)

    assert run_async(scenario()) == 1


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", b""])
def test_garbage_or_nothing_is_an_upstream_error(answer):
    async def scenario():
        server, port, *_ = await serve_answers([answer], close_after=True)
        try:
            await Pool("127.0.0.1", port).request("GET", "/", [], b"", timeout_s=5)
        finally:
            server.close()

    with pytest.raises(UpstreamError):
        run_async(scenario())


@pytest.mark.parametrize("lengths", [b"Content-Length: 1\r\nContent-Length: 5", b"Content-Length: 1, 5",
                                     b"Content-Length: +1", b"Content-Length: 1,"])
def test_conflicting_or_invalid_content_lengths_are_refused(lengths):
    """RFC 9112 §6.3: framing two readers could take differently is an error, not last-wins."""
    async def scenario():
        server, port, *_ = await serve_answers([b"HTTP/1.1 200 OK\r\n" + lengths + b"\r\n\r\nhello"])
        upstream = upstream_to(port, retries=0)
        try:
            await upstream.send("GET", "/", [], b"", 5)
        finally:
            server.close()
            await upstream.close()

    with pytest.raises(UpstreamUnavailable) as caught:  # the edge answers 502
        run_async(scenario())
    assert caught.value.status == 502


def test_repeated_equal_content_lengths_are_one():
    async def scenario():
        server, port, *_ = await serve_answers(
            [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello"])
        pool = Pool("127.0.0.1", port)
        response = await pool.request("GET", "/", [], b"", timeout_s=5)
        body = await response.read(5)
        response.release()
        pool.close()
        server.close()
        return body

    assert run_async(scenario()) == b"hello"


@pytest.mark.parametrize("connection", [b"Connection: close\r\nConnection: X-Foo", b"Connection: X-Foo, close",
                                        b"Connection: keep-alive\r\nConnection: close",
                                        b"Connection: close, keep-alive"])
def test_close_in_any_connection_header_closes(connection):
    async def scenario():
        server, port, _, connections = await serve_answers(
            [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" + connection + b"\r\n\r\na"] * 2)
        pool = Pool("127.0.0.1", port)
        for _ in range(2):
            response = await pool.request("GET", "/", [], b"", timeout_s=5)
            await response.read(5)
            response.release()
        idle = len(pool.idle)
        pool.close()
        server.close()
        return len(connections), idle

    assert run_async(scenario()) == (2, 0)  # a new connection each time; none pooled


def test_header_values_with_line_breaks_are_never_sent():
    async def scenario():
        server, port, received, _ = await serve_answers([b"HTTP/1.1 204 No Content\r\n\r\n"])
        pool = Pool("127.0.0.1", port)
        response = await pool.request("GET", "/", [("X-Evil", "a\r\nX-Injected: 1"), ("X-Ok", "1")], b"", timeout_s=5)
        response.release()
        pool.close()
        server.close()
        return received[0]

    head = run_async(scenario())
    assert b"X-Injected" not in head and b"X-Ok: 1" in head


def test_a_large_body_is_not_buffered_whole_while_the_reader_is_slow():
    """Past HIGH_WATER buffered bytes the connection stops reading from the service until the
    buffer drains: a slow client downstream makes the edge hold a bounded amount, not the body."""
    from gateway.edge.upstream_http import CHUNK, HIGH_WATER

    size = 4 * 1024 * 1024
    body = bytes(range(256)) * (size // 256)

    async def scenario():
        server, port, _, _ = await serve_answers([b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body])
        pool = Pool("127.0.0.1", port)
        response = await pool.request("GET", "/big", [], b"", timeout_s=5)
        connection = response._connection
        received, largest = [], 0
        async for chunk in response.iter_chunks(5):
            received.append(chunk)
            largest = max(largest, len(connection.buffer))
            await asyncio.sleep(0.002)  # the slow client
        response.release()
        pooled = len(pool.idle)
        pool.close()
        server.close()
        return b"".join(received), largest, pooled

    data, largest, idle = run_async(scenario())
    assert data == body
    assert largest <= HIGH_WATER + 4 * CHUNK  # bounded by the mark (plus what one read may bring), not 4 MiB
    assert idle == 1  # read whole: the connection goes back to the pool


def test_a_trickling_head_times_out_in_total():
    """The head's timeout is for the whole head: a service sending a byte at a time cannot stretch it."""

    async def scenario():
        stop = asyncio.Event()
        done = asyncio.Event()

        async def trickle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                if stop.is_set():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)
            writer.close()
            done.set()

        async with serving(trickle) as port:
            pool = Pool("127.0.0.1", port)
            started = asyncio.get_running_loop().time()
            try:
                with pytest.raises(TimeoutError):
                    await pool.request("GET", "/", [], b"", timeout_s=0.3)
                return asyncio.get_running_loop().time() - started
            finally:
                stop.set()
                await done.wait()

    assert run_async(scenario()) < 1.0


def test_a_pool_on_a_unix_socket(tmp_path):
    """``unix_socket``: connections go to the path; ``host:port`` is only the ``Host`` sent."""
    path = str(tmp_path / "service.sock")

    async def scenario():
        received: list[bytes] = []

        async def handle(reader, writer):
            received.append(await reader.readuntil(b"\r\n\r\n"))
            await answer_and_close(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        async with serving(handle, unix_path=path):
            pool = Pool("licenses.internal", 8003, unix_socket=path)
            response = await pool.request("GET", "/x", [], b"", timeout_s=5)
            body = await response.read(5)
            response.release()
            pool.close()
        missing = Pool("127.0.0.1", 1, unix_socket=str(tmp_path / "nobody.sock"))
        with pytest.raises(UpstreamError, match="nobody.sock"):
            await missing.request("GET", "/x", [], b"", timeout_s=5)
        return body, received[0]

    body, head = run_async(scenario())
    assert body == b"ok" and b"Host: licenses.internal:8003\r\n" in head


@pytest.mark.parametrize("slow", ["connect", "interim"])
def test_the_head_timeout_includes_connecting_and_interim_answers(slow):
    """``timeout_s`` is one deadline from the call: a slow connect or a ``100 Continue`` sent
    late does not give the head read the whole timeout again."""

    async def scenario():
        stop = asyncio.Event()

        async def hung(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            if slow == "interim":
                await asyncio.sleep(0.3)
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await writer.drain()
            await hang(writer, stop)

        async with serving(hung) as port:
            pool = Pool("127.0.0.1", port)
            if slow == "connect":
                connect = pool._connection

                async def slow_connect(*args):
                    await asyncio.sleep(0.3)
                    return await connect(*args)

                pool._connection = slow_connect
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                with pytest.raises(TimeoutError):
                    await pool.request("GET", "/", [], b"", timeout_s=0.6)
                return loop.time() - started
            finally:
                stop.set()
                pool.close()

    assert run_async(scenario()) < 0.85  # 0.6 s in all; 0.3 s + 0.6 s with the timeout restarted
