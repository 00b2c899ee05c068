"""Scripted upstreams for the tests of the edge's HTTP client (``test_upstream_http.py``) and of
``Upstream.send`` (``test_upstream_send.py``, ``test_upstream_breaker_counts.py``): a handler
served on a loopback port or a unix socket, a server answering with scripted bytes, an
``Upstream`` whose first connection is pooled, and the steps handlers share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from gateway.edge.upstreams import Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_A = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"  # a one-byte answer, the connection kept alive


@asynccontextmanager
async def serving(handle: Handler, *, unix_path: str | None = None) -> AsyncIterator[int]:
    """``handle`` serving each connection on a free loopback port (yielded; 0 on ``unix_path``),
    closed after the block (whose clients must be closed by then: the server waits for nothing)."""
    if unix_path:
        server = await asyncio.start_unix_server(handle, unix_path)
    else:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield 0 if unix_path else server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def upstream_to(port: int, **options) -> Upstream:
    """An ``Upstream`` named ``x`` to the loopback ``port`` (``options``: retries, breaker)."""
    return Upstream("x", f"http://127.0.0.1:{port}", **options)


@asynccontextmanager
async def pooled_upstream(handle: Handler, **options) -> AsyncIterator[tuple[Upstream, bytes]]:
    """``handle`` served, an ``Upstream`` to it (``options``) and one GET answered and released,
    so that its connection is pooled: ``(upstream, first body)``; the upstream closed, then the
    server, after the block."""
    async with serving(handle) as port:
        upstream = upstream_to(port, **options)
        try:
            first = await upstream.send("GET", "/", [], b"", 5)
            body = await first.read(5)
            first.release()  # pooled, still open
            yield upstream, body
        finally:
            await upstream.close()


def answers_once_then(second: bytes, heads: list[bytes]) -> Handler:
    """A handler answering a connection's first request ``OK_A`` (kept alive) and the next one on
    it ``second`` (nothing: it closes, as a service's idle timer does), then closing; each request
    head it read goes to ``heads``."""

    async def handle(reader, writer):
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(OK_A)
        await writer.drain()
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
        except asyncio.IncompleteReadError:
            writer.close()
            return
        writer.write(second)
        await writer.drain()
        writer.close()

    return handle


async def answer_and_close(writer: asyncio.StreamWriter, answer: bytes) -> None:
    writer.write(answer)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def hang(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """Answer nothing until ``stop`` is set (a hung worker), then close."""
    await stop.wait()
    writer.close()


async def serve_answers(answers: list[bytes], *, close_after: bool = False):
    """A server answering each request head with the next scripted bytes; records what it got:
    ``(server, port, requests received, connections)``."""
    received: list[bytes] = []
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        while answers:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            received.append(head + (await reader.readexactly(length) if length else b""))
            writer.write(answers.pop(0))
            await writer.drain()
            if close_after:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received, connections
