"""aiohttp's HTTP/1.1 server, with what a front door needs and aiohttp leaves out.

- a header timeout: a connection that has sent part of a request head and not the rest
  within ``header_timeout`` gets 408 and is closed (aiohttp alone would only close it at
  the idle timeout, silently);
- a limit on open connections (per process): beyond it a new connection gets 503;
- parse errors (malformed requests, smuggling shapes such as Content-Length with
  Transfer-Encoding, duplicate Content-Length, obs-fold, bad chunk sizes, oversized heads)
  answered as problem documents, 414 for a request target too long, 431 for a header field
  too long or too many, each audited.

- ``WholeResponse``: an answer whose body is all here, its head and body written at once;
- ``StreamedResponse``: aiohttp's streamed answer;
- neither says ``Server: Python/3.x aiohttp/...`` as aiohttp's answers do (a front door does
  not advertise its stack; a service's own ``Server`` passes as it sent it).

This leans on aiohttp's internals (``RequestHandler._make_error_handler``, the handler's
``_current_request``/``_messages``, what ``RequestHandler.finish_response`` asks of a response,
``StreamResponse._prepare_headers``); pyproject pins aiohttp below the next minor version, and
tests/gateway/test_edge.py, test_edge_refusals.py, test_edge_limits.py,
test_edge_whole_response.py and test_edge_server_header.py exercise each.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web, web_protocol
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler

from gateway.edge.problems import EdgeProblem, HeadersTooLarge, MalformedRequest, Overloaded, RequestTimeout

# (peer, problem) -> response for a request aiohttp could not parse; audited by the gateway.
ErrorResponder = Callable[[web.BaseRequest, EdgeProblem], Awaitable["web.StreamResponse | WholeResponse"]]
# (peer, problem) -> raw response bytes for a connection refused before any request.
RawResponder = Callable[[str | None, EdgeProblem], bytes]


# The parser the edge's protocol uses: aiohttp's C one (llhttp), or its pure Python one where the
# C extension is missing or AIOHTTP_NO_EXTENSIONS is set. They quote a line too long differently.
PURE_PYTHON_PARSER = web_protocol.HttpRequestParser is HttpRequestParserPy
# A header field's line as the pure Python parser quotes it: its name, then a colon (a request
# line starts with its method and a space; a method is a token, with no colon).
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:")


def exceeded_limit(exc: LineTooLong) -> int | None:
    """The limit ``exc`` says was exceeded; None if it names none (``LineTooLong``'s default is
    the text ``"Unknown"``, and aiohttp's parsers pass the int they checked, which nothing pins)."""
    try:
        return int(exc.args[1])
    except (IndexError, TypeError, ValueError):
        return None


def is_request_line(exc: LineTooLong, request_line_limit: int, *, pure_python: bool = PURE_PYTHON_PARSER) -> bool:
    """Whether the line too long is the request line (else a header field, or a line aiohttp
    does not say). A request's lines are checked against two limits (aiohttp 3.14): the C
    parser checks only the request target against ``max_line_size`` (``cb_on_url``; a header's
    name and value against ``max_field_size``); the pure Python parser checks a finished first
    line against ``max_line_size`` but also a line still unfinished at the end of what has
    arrived, of any kind, and quotes it from its start: a header's is told by its ``name:``.
    Chunk-size lines are checked against ``max_line_size`` too, but a body's errors go to the
    handler reading it, never here."""
    if exceeded_limit(exc) != request_line_limit:
        return False
    if not pure_python:
        return True
    quoted = exc.args[0] if exc.args else b""
    if isinstance(quoted, str):
        quoted = quoted.encode("latin-1", "replace")
    return not _HEADER_LINE.match(quoted)


def parse_problem(exc: BaseException | None, message: str | None, *, request_line_limit: int,
                  pure_python: bool = PURE_PYTHON_PARSER) -> EdgeProblem:
    """The problem for a request aiohttp could not parse. ``request_line_limit``: the parser's
    ``max_line_size``, which must differ from its ``max_field_size`` (``EdgeServer`` sees to it).

    A line too long is told apart by the limit it exceeded (:func:`is_request_line`), not by its
    text alone: aiohttp's C parser quotes only the request target or only the header value (an
    over-long ``Referer: /...`` or ``Origin: https://...`` reads like a request target).
    """
    text = str(message or getattr(exc, "message", "") or "malformed request")
    lower = text.lower()
    if isinstance(exc, LineTooLong):
        if is_request_line(exc, request_line_limit, pure_python=pure_python):
            return MalformedRequest("the request line is too long", code="uri_too_long", status=414,
                                    title="URI too long")
        return HeadersTooLarge("the request head is too large")
    if "too many headers" in lower or ("header" in lower and "long" in lower):
        return HeadersTooLarge("the request head is too large")
    # The parser's first line only: the rest quotes the client's bytes back.
    return MalformedRequest(f"the request could not be parsed: {text.splitlines()[0][:120]}")


class EdgeProtocol(RequestHandler):
    def __init__(self, manager: EdgeServer, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager
        self._header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._cancel_head_timer()
        elif (self._head_timer is None and self._current_request is None and not self._messages
              and not self._force_close and self.transport is not None):
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._current_request is None and not self._messages and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            self.transport.write(self._edge.raw_responder(peer[0] if peer else None,
                                                          RequestTimeout("the request head was not sent in time")))
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _make_error_handler(self, err_info):  # aiohttp internal, see the module docstring
        async def handler(request: web.BaseRequest) -> web.StreamResponse | WholeResponse:
            problem = parse_problem(err_info.exc, err_info.message, request_line_limit=self._edge.request_line_limit)
            return await self._edge.error_responder(request, problem)

        return handler


class EdgeServer(web.Server):
    def __init__(self, handler, *, error_responder: ErrorResponder, raw_responder: RawResponder,
                 max_connections: int, header_timeout: float, max_line_size: int, max_field_size: int,
                 **kwargs: Any) -> None:
        """:raise ValueError: ``max_line_size`` equal to ``max_field_size``: a line too long would
        no longer say whether it was the request line (414) or a header (431), see
        ``parse_problem``."""
        if max_line_size == max_field_size:
            raise ValueError("max_line_size and max_field_size must differ: the one exceeded tells 414 from 431")
        super().__init__(handler, max_line_size=max_line_size, max_field_size=max_field_size, **kwargs)
        self.request_line_limit = max_line_size
        self.error_responder = error_responder
        self.raw_responder = raw_responder
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.refused_connections = 0

    def __call__(self) -> EdgeProtocol:
        return EdgeProtocol(self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) > self.max_connections:
            self.refused_connections += 1
            peer = transport.get_extra_info("peername")
            transport.write(self.raw_responder(peer[0] if peer else None,
                                               Overloaded("the gateway has too many open connections")))
            handler.force_close()

    @property
    def open_connections(self) -> int:
        return len(self._connections)


REASONS = {status.value: status.phrase for status in HTTPStatus}
WRITE_JOINED = 16 * 1024  # bodies up to this size are copied after the head: one buffer, one send
# Control characters aiohttp's writer refused in a header ([\x00-\x08\x0a-\x1f\x7f]), less CR and
# LF: those are counted instead, the head holding exactly the CR LFs ``prepare`` puts there.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class WholeResponse:
    """An answer whose body is all here (a service's answer read whole, a problem document), as
    aiohttp's ``RequestHandler`` takes a response: ``prepare`` writes head and body in one call,
    ``write_eof`` has nothing left to do, ``keep_alive`` says whether the connection stays.

    Why not ``web.Response``: its header multidict, five awaited steps and the payload writer
    measured ~16 µs of CPU per forwarded request (a minimal aiohttp forwarder under wrk at 32
    connections: 0.107 ms per request, 0.091 with this, medians of 6 alternated rounds). What
    aiohttp adds is kept but its ``Server`` (see the module docstring): ``Date`` when the
    service sent none, ``Content-Type: application/octet-stream`` for a body without one,
    ``Connection`` as the request's version and keep-alive ask (``close`` said in HTTP/1.0
    too), no ``Content-Length`` for 1xx/204/304, for ``HEAD`` the length without the body (the
    service's, ``head_length``, or the body's), a header holding a control character other than
    tab refused (CR, LF, NUL, ESC, DEL...: ``ValueError``, as aiohttp's writer refuses it:
    nothing is sent and the connection closes), and the wait for a slow client to take what was
    written (the writer's ``drain``). A service's header bytes go out as it sent them (latin-1
    both ways, where aiohttp's writer encoded UTF-8 and doubled bytes 0x80-0xFF).
    """

    __slots__ = ("status", "headers", "body", "head_length", "_keep_alive", "_sent")

    def __init__(self, status: int, headers: Iterable[tuple[str, str]], body: bytes | None, *,
                 head_length: int | None = None) -> None:
        self.status = status
        self.headers = headers  # (name, value) pairs without framing fields (Content-Length, Connection)
        self.body = body  # None: an answer without a body (HEAD, 1xx, 204, 304)
        self.head_length = head_length  # a HEAD answer's length when ``body`` is None
        self._keep_alive: bool | None = None  # None: as the request asks
        self._sent = False

    @property
    def keep_alive(self) -> bool | None:
        return self._keep_alive

    def force_close(self) -> None:
        self._keep_alive = False

    async def prepare(self, request: web.BaseRequest) -> None:
        """:raise ConnectionResetError: the client is gone. :raise ValueError: a header holding
        a line break or another control character (tab excepted)."""
        if self._sent:
            return
        self._sent = True
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        keep_alive = request.keep_alive if self._keep_alive is None else self._keep_alive
        self._keep_alive = keep_alive
        version = request.version
        status = self.status
        lines = [f"HTTP/{version.major}.{version.minor} {status} {REASONS.get(status, '')}"]
        dated = typed = False
        for name, value in self.headers:
            lines.append(f"{name}: {value}")
            lower = name.lower()
            if lower == "date":
                dated = True
            elif lower == "content-type":
                typed = True
        body = self.body
        if status in (204, 304) or 100 <= status < 200:
            body = None
        elif request.method == "HEAD":  # the length the answer would have, and no body
            length = self.head_length if body is None else len(body)
            if length is not None:
                lines.append(f"Content-Length: {length}")
            body = None
        else:
            body = body or b""
            lines.append(f"Content-Length: {len(body)}")
            if body and not typed:
                lines.append("Content-Type: application/octet-stream")
        if not dated:
            lines.append(f"Date: {rfc822_formatted_time()}")
        if not keep_alive:
            lines.append("Connection: close")  # said in HTTP/1.0 too: a parse error's answer is 1.0
        elif version.minor == 0:
            lines.append("Connection: keep-alive")
        lines.append("\r\n")
        head = "\r\n".join(lines)
        # Each line ends with the one CR LF put there: a CR or LF inside a name or value would
        # let a header start another (response splitting); NUL, ESC, DEL... are refused as
        # aiohttp refused them (a service's headers reach the client as it sent them).
        if head.count("\n") != len(lines) or head.count("\r") != len(lines) or CONTROL.search(head):
            raise ValueError("a response header holds a line break or another control character")
        try:
            # upstream_http decodes a service's head latin-1, one character a byte: encoded so,
            # each byte goes out as the service sent it (UTF-8 would double 0x80-0xFF).
            data = head.encode("latin-1")
        except UnicodeEncodeError:  # a header of the gateway's beyond latin-1 (none today)
            data = head.encode("utf-8")  # as aiohttp's writer wrote it
        if not body:
            transport.write(data)
        elif len(body) <= WRITE_JOINED:
            transport.write(data + body)
        else:
            transport.writelines((data, body))
        # A client that does not read (pipelining requests for large answers) must not make the
        # edge hold answer after answer: wait while the transport is over its high-water mark.
        await request.writer.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        pass  # written whole by ``prepare``


class StreamedResponse(web.StreamResponse):
    """aiohttp's streamed answer without the ``Server`` header aiohttp adds when the headers
    have none."""

    async def _prepare_headers(self) -> None:  # aiohttp internal, see the module docstring
        own = hdrs.SERVER in self.headers  # the service's, passed on
        await super()._prepare_headers()
        if not own:
            self.headers.popall(hdrs.SERVER, None)


def raw_problem_response(problem: EdgeProblem, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {problem.status} {problem.title}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


__all__ = ["EdgeProtocol", "EdgeServer", "HttpProcessingError", "StreamedResponse", "WholeResponse",
           "parse_problem", "raw_problem_response"]


def check_framing(headers) -> None:
    """Request-smuggling shapes, refused even if the parser let them through (RFC 9112 §6.3).

    :raise MalformedRequest: two Content-Length headers, Content-Length with
        Transfer-Encoding, or a Transfer-Encoding other than plain ``chunked``.
    """
    lengths = headers.getall("Content-Length", [])
    encodings = headers.getall("Transfer-Encoding", [])
    if len(lengths) > 1:
        raise MalformedRequest("more than one Content-Length", code="ambiguous_framing")
    if lengths and encodings:
        raise MalformedRequest("both Content-Length and Transfer-Encoding", code="ambiguous_framing")
    if encodings and (len(encodings) > 1 or encodings[0].strip().lower() != "chunked"):
        raise MalformedRequest("only Transfer-Encoding: chunked is accepted", code="ambiguous_framing")
