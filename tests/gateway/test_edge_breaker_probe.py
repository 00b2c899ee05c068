"""The half-open probe through the edge: its answer's head closes the breaker, and a body that
then breaks off (the probe's ticket, ``Breaker.closer``) opens it again."""

from __future__ import annotations

import time

import pytest
import requests

from gateway.edge.upstreams import Breaker


def _opened(edge) -> tuple[Breaker, int]:
    """The seal upstream's breaker opened by one failure, and the ticket its probe will take."""
    breaker = edge.gateway.upstreams["seal"].breaker

    def fail() -> int:
        breaker.failure(breaker.before())
        return breaker.epoch

    ticket = edge.call(fail)
    assert breaker.state == "open"
    time.sleep(breaker.open_s + 0.05)
    return breaker, ticket


def test_a_probe_whose_streamed_body_breaks_off_opens_the_circuit_again(start_edge):
    edge = start_edge(GATEWAY_BREAKER_FAILURES=1, GATEWAY_BREAKER_OPEN=0.05)
    breaker, _probe = _opened(edge)
    token = edge.tokens.bearer(aud="xsn:seal")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{edge.url}/seal/cut", headers=token).content  # noqa: B018 - read the body
    assert breaker.state == "open"
    opened = requests.get(f"{edge.url}/seal/x", headers=token)
    assert opened.status_code == 503 and opened.json()["code"] == "upstream_circuit_open"
