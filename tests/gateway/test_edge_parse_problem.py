"""A line too long, as each of aiohttp's request parsers reports it, gets 414 only when it is the
request line (gateway.edge.protocol.parse_problem); a header field's gets 431."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp.http_exceptions import LineTooLong
from aiohttp.http_parser import HttpRequestParserC, HttpRequestParserPy

from gateway.edge.protocol import parse_problem

LINE, FIELD = 8190, 8189  # the edge's max_line_size and max_field_size (GATEWAY_MAX_HEADER_BYTES)
LONG = b"a" * 9000
PARSERS = {"c": (HttpRequestParserC, False), "python": (HttpRequestParserPy, True)}


def refused(parser: str, data: bytes) -> tuple[int, str]:
    cls, pure_python = PARSERS[parser]
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(LineTooLong) as raised:
            cls(mock.Mock(), loop, 2**16, max_line_size=LINE, max_field_size=FIELD).feed_data(data)
    finally:
        loop.close()
    problem = parse_problem(raised.value, None, request_line_limit=LINE, pure_python=pure_python)
    return problem.status, problem.code


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize(("data", "expected"), [
    (b"GET /" + LONG + b" HTTP/1.1\r\n\r\n", (414, "uri_too_long")),
    (b"GET /" + LONG, (414, "uri_too_long")),  # not finished yet
    (b"GET / HTTP/1.1\r\nReferer: /" + LONG + b"\r\n\r\n", (431, "headers_too_large")),
    # Unfinished: the pure Python parser checks it against max_line_size, as if a request line.
    (b"GET / HTTP/1.1\r\nReferer: /" + LONG, (431, "headers_too_large")),
    (b"GET / HTTP/1.1\r\nOrigin: https://" + LONG, (431, "headers_too_large")),
], ids=["request-line", "request-line-unfinished", "header", "header-unfinished", "origin-unfinished"])
def test_a_line_too_long_is_a_request_line_only_when_it_is_one(parser, data, expected):
    assert refused(parser, data) == expected


@pytest.mark.parametrize("limit", ["Unknown", None, "8190"])
def test_a_limit_named_otherwise_than_as_an_int_is_read_or_taken_as_a_header_s(limit):
    exc = LineTooLong(b"/" + LONG[:99] + b"...", limit) if limit is not None else LineTooLong(b"/x")
    problem = parse_problem(exc, None, request_line_limit=LINE, pure_python=False)
    assert (problem.status, problem.code) == ((414, "uri_too_long") if limit == "8190" else
                                              (431, "headers_too_large"))
