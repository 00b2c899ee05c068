"""A small HTTP/1.1 client for the gateway's upstreams, an asyncio protocol (uvloop underneath).

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
HIGH_WATER = 256 * 1024  # bytes buffered from a service before its connection stops being read
LOW_WATER = 64 * 1024
IDLE_TTL_S = 15.0
RESOLVE_TTL_S = 30.0  # a pooled connection idle longer than this is closed, not reused


class UpstreamError(Exception):
    """The upstream could not be reached or broke HTTP; ``sent`` says whether it may have acted."""

    def __init__(self, message: str, *, sent: bool = True, reused: bool = False, answered: bool = False) -> None:
        super().__init__(message)
        self.sent = sent  # False: no connection was made, nothing went out
        self.reused = reused  # the request went out on a pooled connection
        self.answered = answered  # some of the response had arrived


class Connection(asyncio.Protocol):
    """One keep-alive connection: an asyncio protocol with its own receive buffer.

    Why not ``asyncio.StreamReader``: measured in front of the benchmark's upstream, the streams
    client cost ~0.2 ms of CPU per forwarded request and this protocol ~0.1 ms (one waiter per
    wake-up, one timer per wait, no reader/protocol pair and its flow-control bookkeeping per
    call). A response usually arrives in one ``data_received``: head and body are then taken
    from the buffer without another wake-up.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.idle_since = time.monotonic()
        self.reused = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._loop: asyncio.AbstractEventLoop

    # -- protocol callbacks --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()  # kept: on 3.11 each lookup costs a getpid() system call

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self._paused and self.transport is not None:
            # A slow client downstream: stop reading from the service until the buffer drains.
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading -------------------------------------------------------------------------------
    async def wait(self, timeout_s: float) -> None:
        """Until more bytes (or EOF) arrive. :raise TimeoutError: none within ``timeout_s``.
        :raise IncompleteReadError: the connection is already at EOF."""
        if self.eof:
            raise asyncio.IncompleteReadError(bytes(self.buffer), None)
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes from the buffer (resumes reading once it has drained)."""
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        if self._paused and len(self.buffer) < LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def read_until(self, separator: bytes, timeout_s: float, limit: int = HEAD_LIMIT) -> bytes:
        """Bytes up to and including ``separator``.

        :raise LimitOverrunError: not found within ``limit`` bytes. :raise IncompleteReadError:
            EOF first. :raise TimeoutError: not all there within ``timeout_s`` (in total: a
            service trickling its head cannot stretch it).
        """
        deadline = None
        while True:
            index = self.buffer.find(separator)
            if index >= 0:
                return self.take(index + len(separator))
            if len(self.buffer) > limit:
                raise asyncio.LimitOverrunError("no separator within the limit", len(self.buffer))
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + timeout_s
            await self.wait(deadline - now)

    async def read_exactly(self, size: int, timeout_s: float) -> bytes:
        while len(self.buffer) < size:
            await self.wait(timeout_s)
        return self.take(size)

    async def read_some(self, size: int, timeout_s: float) -> bytes:
        """Up to ``size`` bytes, waiting for some; ``b""`` at EOF."""
        if not self.buffer:
            if self.eof:
                return b""
            try:
                await self.wait(timeout_s)
            except asyncio.IncompleteReadError:
                return b""
            if not self.buffer:
                return b""
        return self.take(size)

    # -- the pool's view -----------------------------------------------------------------------
    def usable(self) -> bool:
        transport = self.transport
        return (transport is not None and not transport.is_closing() and not self.eof and not self.buffer
                and time.monotonic() - self.idle_since < IDLE_TTL_S)

    def write(self, data: bytes) -> None:
        """:raise ConnectionResetError: the connection is closed."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    def __init__(self, pool: Pool, connection: Connection, method: str, status: int, header_lines: list[str],
                 version: str) -> None:
        """:raise ValueError: a header line that is not ``name: value`` (a name with no spaces around
            it), or Content-Length values that are not one decimal length (RFC 9112 §6.3: several
            lengths would let two readers of the answer frame it differently: refused, not picked)."""
        self._pool = pool
        self._connection: Connection | None = connection
        self.status = status
        self.ticket = 0  # its request's circuit-breaker ticket (``upstreams.Upstream.send`` sets it)
        self.headers: list[tuple[str, str]] = []
        transfer_encoding = None
        lengths: set[str] = set()  # every Content-Length value ("5, 5" and two headers saying 5 are one)
        self.connection_values: list[str] = []  # every Connection header (the fields it names are hop-by-hop)
        # One pass: each line split, checked, and the framing fields picked out.
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ValueError(line)
            value = value.strip()
            self.headers.append((name, value))
            lower = name.lower()
            if lower == "content-length":
                lengths.update(v.strip() for v in value.split(","))
            elif lower == "transfer-encoding":
                transfer_encoding = value
            elif lower == "connection":
                self.connection_values.append(value)
        if len(lengths) > 1 or any(not (v.isascii() and v.isdigit()) for v in lengths):
            raise ValueError(f"Content-Length {sorted(lengths)!r}"[:100])
        self._chunked = transfer_encoding is not None and "chunked" in transfer_encoding.lower()
        self.content_length = int(next(iter(lengths))) if lengths and not self._chunked else None
        # The tokens of every Connection header: "close" in any of them ends the connection.
        connection_tokens = {t.strip().lower() for v in self.connection_values for t in v.split(",")}
        self._keep_alive = "close" not in connection_tokens and (version == "HTTP/1.1"
                                                                  or "keep-alive" in connection_tokens)
        self._no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if self._no_body:
            self.content_length = self.content_length if method == "HEAD" else 0
        elif self.content_length is None and not self._chunked:
            self._keep_alive = False  # the body ends when the connection does
        self._done = False

    async def iter_chunks(self, timeout_s: float) -> AsyncIterator[bytes]:
        """The body as it arrives. :raise UpstreamError: the upstream broke off or timed out."""
        connection = self._conn()
        try:
            if self._no_body:
                pass
            elif self._chunked:
                while True:
                    line = await connection.read_until(b"\r\n", timeout_s)
                    size = int(line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while (await connection.read_until(b"\r\n", timeout_s)) != b"\r\n":
                            pass  # trailers are dropped
                        break
                    data = await connection.read_exactly(size, timeout_s)
                    if await connection.read_exactly(2, timeout_s) != b"\r\n":
                        raise ValueError("chunk not terminated")
                    yield data
            elif self.content_length is not None:
                remaining = self.content_length
                while remaining:
                    data = await connection.read_some(min(CHUNK, remaining), timeout_s)
                    if not data:
                        raise asyncio.IncompleteReadError(b"", remaining)
                    remaining -= len(data)
                    yield data
            else:
                while data := await connection.read_some(CHUNK, timeout_s):
                    yield data
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            self._keep_alive = False
            raise UpstreamError(f"the response body broke off: {exc!r}"[:200], answered=True) from exc
        self._done = True

    async def read(self, timeout_s: float) -> bytes:
        connection = self._conn()
        length = self.content_length
        if not self._no_body and length is not None and len(connection.buffer) >= length:
            self._done = True  # the usual small answer: already here whole, no wake-up needed
            return connection.take(length)
        return b"".join([chunk async for chunk in self.iter_chunks(timeout_s)])

    def _conn(self) -> Connection:
        assert self._connection is not None, "released"
        return self._connection

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
    """Keep-alive connections to one ``host:port``, at most ``size`` idle ones kept; with
    ``unix_socket``, to the service's Unix domain socket at that path instead (``host:port``
    is then only the ``Host`` the service is told)."""

    def __init__(self, host: str, port: int, *, size: int = 256, unix_socket: str | None = None) -> None:
        self.host = host
        self.port = port
        self.size = size
        self.unix_socket = unix_socket
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
                if self.unix_socket is not None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    await loop.sock_connect(sock, self.unix_socket)
                else:
                    family, address = await self._address(loop)
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    await loop.sock_connect(sock, address)
                _transport, connection = await loop.create_connection(Connection, sock=sock)
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, OSError | TimeoutError):
                raise UpstreamError(f"cannot connect to {self.unix_socket or self.host_header}: {exc!r}"[:200],
                                    sent=False) from exc
            raise
        return connection

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

        :raise UpstreamError: no connection (none made within ``connect_timeout_s`` or
            ``timeout_s``, whichever is shorter), the connection broke before the head
            arrived, or the head is not HTTP/1.x. :raise TimeoutError: no head within
            ``timeout_s`` (connecting and every interim answer included).
        """
        deadline = time.monotonic() + timeout_s
        # Cut here, where ``timeout_s`` is defined to include connecting, so that no caller (a
        # retry with little time left, the ``/livez`` probe) can let a connect outlast it.
        connection = await self._connection(min(connect_timeout_s, timeout_s), fresh)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers if "\r" not in value and "\n" not in value]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        interim = False  # a 100 Continue arrived
        try:
            connection.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                connection.write(body)
            raw = await connection.read_until(b"\r\n\r\n", deadline - time.monotonic())
            while raw.startswith(b"HTTP/1.1 100") or raw.startswith(b"HTTP/1.0 100"):
                interim = True
                raw = await connection.read_until(b"\r\n\r\n", deadline - time.monotonic())  # interim answers
        except TimeoutError:
            connection.close()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            connection.close()
            # Any byte of an answer (a head cut short, an interim answer, a head over the
            # limit) means the service took the request: not the keep-alive race.
            answered = interim or bool(connection.buffer) or isinstance(exc, asyncio.LimitOverrunError)
            raise UpstreamError(f"{self.host_header} closed the connection: {exc!r}"[:200],
                                reused=connection.reused, answered=answered) from exc
        except BaseException:  # cancelled (the client went away, the gateway stops)
            connection.close()
            raise
        try:
            status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
            version, status, _reason = (status_line.split(" ", 2) + [""])[:3]
            if version not in ("HTTP/1.1", "HTTP/1.0"):
                raise ValueError(status_line)
            return Response(self, connection, method, int(status), header_lines, version)
        except ValueError as exc:
            connection.close()
            raise UpstreamError(f"{self.host_header} answered something other than valid HTTP/1.1",
                                answered=True) from exc

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
