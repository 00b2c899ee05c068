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



def _edge_limits(suite) -> tuple[int, int]:
    """The most header fields and the longest value the suite's gateway takes: as its edge reads
    them, from the environment the suite gives it (``XSN_GATEWAY_*``), else gateway.config's
    defaults; the services' gunicorn derives its own limits from the same environment."""
    env = suite.child_env()
    most = int(env.get("XSN_GATEWAY_MAX_HEADERS") or SETTINGS["GATEWAY_MAX_HEADERS"])
    longest = int(env.get("XSN_GATEWAY_MAX_HEADER_BYTES") or SETTINGS["GATEWAY_MAX_HEADER_BYTES"]) - 1
    return most, longest


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
    most, _longest = _edge_limits(suite)
    status, kind, body = _get(suite, "/seal/info", _padding(most - 1))  # and Host: the edge's most
    assert (status, kind) == (200, "application/json"), (status, kind, body[:200])
    # A caller with a token: the edge adds its X-XSN-* headers too.
    token = client_token(suite, "xsn-admin")["access_token"]
    status, kind, body = _get(suite, "/identity/auth/whoami",
                              [("Authorization", f"Bearer {token}"), *_padding(most - 2)])
    assert (status, kind) == (200, "application/json"), (status, kind, body[:200])
    # One more is the edge's own refusal, a problem document.
    status, kind, _body = _get(suite, "/seal/info", _padding(most))
    assert (status, kind) == (431, "application/problem+json")


@pytest.mark.parametrize("shorter", [7, 0])  # 7: gunicorn's default counted the name and ": " too
def test_a_header_value_as_long_as_the_edge_takes_reaches_the_service(suite, shorter):
    _most, longest = _edge_limits(suite)
    status, kind, body = _get(suite, "/seal/info", [("X-Long-Header", "v" * (longest - shorter))])
    assert (status, kind) == (200, "application/json"), (status, kind, body[:200])


def test_a_longer_header_value_is_the_edges_problem(suite):
    _most, longest = _edge_limits(suite)
    status, kind, _body = _get(suite, "/seal/info", [("X-Long-Header", "v" * (longest + 1))])
    assert (status, kind) == (431, "application/problem+json")
