"""A small HTTP/1.1 client for the gateway's upstreams, on asyncio streams (uvloop underneath).

Why not aiohttp's client: measured in the gateway, a forwarded request cost about 0.5 ms of
CPU in aiohttp's client with a pooled connection and 1.1–1.5 ms when each request needs a
new connection, which is every request to a gunicorn sync worker (they close after each
response). The services are ours and speak plain HTTP/1.1, so this client does only that:
one request per connection at a time, ``Content-Length``, ``chunked`` or read-until-close
bodies, keep-alive connections kept in a pool per upstream, nothing else (no redirects,
cookies, decompression, proxies or TLS).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import AsyncIterator

HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
IDLE_TTL_S = 15.0
RESOLVE_TTL_S = 30.0  # a pooled connection idle longer than this is closed, not reused


class UpstreamError(Exception):
    """The upstream could not be reached or broke HTTP; ``sent`` says whether it may have acted."""

    def __init__(self, message: str, *, reused: bool = False, answered: bool = False) -> None:
        super().__init__(message)
        self.reused = reused  # the request went out on a pooled connection
        self.answered = answered  # some of the response had arrived


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()
        self.reused = False

    def usable(self) -> bool:
        return (not self.writer.is_closing() and not self.reader.at_eof()
                and time.monotonic() - self.idle_since < IDLE_TTL_S)

    def close(self) -> None:
        self.writer.close()


class Response:
    def __init__(self, pool: Pool, connection: Connection, method: str, status: int, headers: list[tuple[str, str]],
                 version: str) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self.status = status
        self.headers = headers
        names = {name.lower(): value for name, value in headers}
        self._chunked = "chunked" in names.get("transfer-encoding", "").lower()
        length = names.get("content-length")
        self.content_length = int(length) if length is not None and length.isdigit() and not self._chunked else None
        connection_tokens = {t.strip().lower() for t in names.get("connection", "").split(",")}
        self._keep_alive = ((version == "HTTP/1.1" and "close" not in connection_tokens)
                            or "keep-alive" in connection_tokens)
        self._no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if self._no_body:
            self.content_length = self.content_length if method == "HEAD" else 0
        elif self.content_length is None and not self._chunked:
            self._keep_alive = False  # the body ends when the connection does
        self._done = False

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]

    async def iter_chunks(self, timeout_s: float) -> AsyncIterator[bytes]:
        """The body as it arrives. :raise UpstreamError: the upstream broke off or timed out."""
        reader = self._reader()
        try:
            if self._no_body:
                pass
            elif self._chunked:
                while True:
                    async with asyncio.timeout(timeout_s):
                        line = await reader.readuntil(b"\r\n")
                        size = int(line.split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                                pass  # trailers are dropped
                            break
                        data = await reader.readexactly(size)
                        if await reader.readexactly(2) != b"\r\n":
                            raise ValueError("chunk not terminated")
                    yield data
            elif self.content_length is not None:
                remaining = self.content_length
                while remaining:
                    async with asyncio.timeout(timeout_s):
                        data = await reader.read(min(CHUNK, remaining))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", remaining)
                    remaining -= len(data)
                    yield data
            else:
                while True:
                    async with asyncio.timeout(timeout_s):
                        data = await reader.read(CHUNK)
                    if not data:
                        break
                    yield data
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            self._keep_alive = False
            raise UpstreamError(f"the response body broke off: {exc!r}"[:200], answered=True) from exc
        self._done = True

    async def read(self, timeout_s: float) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks(timeout_s)])

    def _reader(self) -> asyncio.StreamReader:
        assert self._connection is not None, "released"
        return self._connection.reader

    def release(self) -> None:
        """Return the connection to the pool if the whole body was read and it may be reused."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if (self._done or self._no_body) and self._keep_alive:
            self._pool.put(connection)
        else:
            connection.close()


class Pool:
    """Keep-alive connections to one ``host:port``, at most ``size`` idle ones kept."""

    def __init__(self, host: str, port: int, *, size: int = 256) -> None:
        self.host = host
        self.port = port
        self.size = size
        self.idle: deque[Connection] = deque()
        self.host_header = f"{host}:{port}"
        self._resolved: tuple[float, int, tuple] | None = None

    async def _connection(self, connect_timeout_s: float, fresh: bool) -> Connection:
        while self.idle and not fresh:
            connection = self.idle.pop()
            if connection.usable():
                connection.reused = True
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        sock = None
        try:
            async with asyncio.timeout(connect_timeout_s):
                family, address = await self._address(loop)
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
                reader, writer = await asyncio.open_connection(sock=sock, limit=HEAD_LIMIT)
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, OSError | TimeoutError):
                raise UpstreamError(f"cannot connect to {self.host_header}: {exc!r}"[:200]) from exc
            raise
        return Connection(reader, writer)

    async def _address(self, loop: asyncio.AbstractEventLoop) -> tuple[int, tuple]:
        """The upstream's address, resolved at most every ``RESOLVE_TTL_S`` seconds: resolving
        on every connection (what ``open_connection(host, port)`` does) costs a thread hop."""
        now = time.monotonic()
        if self._resolved is None or now - self._resolved[0] > RESOLVE_TTL_S:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family, _type, _proto, _name, address = infos[0]
            self._resolved = (now, family, address)
        return self._resolved[1], self._resolved[2]

    def put(self, connection: Connection) -> None:
        if len(self.idle) >= self.size:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        connection.reused = False
        self.idle.append(connection)

    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, *,
                      timeout_s: float, connect_timeout_s: float = 2.0, fresh: bool = False) -> Response:
        """Send one request and read the response head.

        :raise UpstreamError: no connection, the connection broke before the head arrived,
            or the head is not HTTP/1.x. :raise TimeoutError: no head within ``timeout_s``.
        """
        connection = await self._connection(connect_timeout_s, fresh)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers if "\r" not in value and "\n" not in value]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        try:
            connection.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                connection.writer.write(body)
            async with asyncio.timeout(timeout_s):
                raw = await connection.reader.readuntil(b"\r\n\r\n")
                while raw.startswith(b"HTTP/1.1 100") or raw.startswith(b"HTTP/1.0 100"):
                    raw = await connection.reader.readuntil(b"\r\n\r\n")  # interim answers
        except TimeoutError:
            connection.close()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            connection.close()
            raise UpstreamError(f"{self.host_header} closed the connection: {exc!r}"[:200],
                                reused=connection.reused) from exc
        except BaseException:  # cancelled (the client went away, the gateway stops)
            connection.close()
            raise
        try:
            status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
            version, status, _reason = (status_line.split(" ", 2) + [""])[:3]
            if version not in ("HTTP/1.1", "HTTP/1.0"):
                raise ValueError(status_line)
            parsed = []
            for line in header_lines:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    raise ValueError(line)
                parsed.append((name, value.strip()))
            return Response(self, connection, method, int(status), parsed, version)
        except ValueError as exc:
            connection.close()
            raise UpstreamError(f"{self.host_header} answered something other than HTTP/1.1", answered=True) from exc

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
