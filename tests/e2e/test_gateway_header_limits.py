"""Every header field the gateway's edge lets through reaches the service behind it: gunicorn's
own limits are above the edge's (common.ops.http_limits.upstream_header_limits). With gunicorn's
defaults, 97-100 fields (the edge adds its own) or a value of 8182-8189 bytes (gunicorn counts
the name too) passed the edge and came back as gunicorn's HTML 431, not a problem document."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from gateway.config import SETTINGS
from tests.support.suite import client_token

pytestmark = pytest.mark.e2e

MOST = SETTINGS["GATEWAY_MAX_HEADERS"]
LONGEST = SETTINGS["GATEWAY_MAX_HEADER_BYTES"] - 1  # the edge's limit for a header's value


def _get(suite, path: str, fields: list[tuple[str, str]]) -> tuple[int, str, bytes]:
    """GET ``path`` through the gateway with exactly ``fields`` and ``Host`` (nothing else);
    the status, the Content-Type and the body."""
    gateway = urlsplit(suite.base_url("gateway"))
    connection = http.client.HTTPConnection(gateway.hostname, gateway.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in fields:
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        connection.close()


def _padding(count: int) -> list[tuple[str, str]]:
    return [(f"X-Pad-{i}", "v") for i in range(count)]


def test_as_many_header_fields_as_the_edge_takes_reach_the_service(suite):
    status, kind, body = _get(suite, "/seal/info", _padding(MOST - 1))  # and Host: the edge's most
    assert (status, kind) == (200, "application/json"), (status, kind, body[:200])
    # A caller with a token: the edge adds its X-XSN-* headers too.
    token = client_token(suite, "xsn-admin")["access_token"]
    status, kind, body = _get(suite, "/identity/auth/whoami",
                              [("Authorization", f"Bearer {token}"), *_padding(MOST - 2)])
    assert (status, kind) == (200, "application/json"), (status, kind, body[:200])
    # One more is the edge's own refusal, a problem document.
    status, kind, _body = _get(suite, "/seal/info", _padding(MOST))
    assert (status, kind) == (431, "application/problem+json")


@pytest.mark.parametrize("length", [LONGEST - 7, LONGEST])
def test_a_header_value_as_long_as_the_edge_takes_reaches_the_service(suite, length):
    status, kind, body = _get(suite, "/seal/info", [("X-Long-Header", "v" * length)])
    assert (status, kind) == (200, "application/json"), (status, kind, body[:200])


def test_a_longer_header_value_is_the_edges_problem(suite):
    status, kind, _body = _get(suite, "/seal/info", [("X-Long-Header", "v" * (LONGEST + 1))])
    assert (status, kind) == (431, "application/problem+json")
