"""The half-open probe through the edge: its answer's head closes the breaker, and the ticket
kept for a body that may still break off (``Breaker.closer``) lasts only until that body has
arrived whole, read or streamed.

Clearing that ticket (``Breaker.body_read``) is defensive, keeping the breaker's state tidy: no
code of the edge's reports a failure under a ticket whose body is complete, so no answer a
client gets depends on it today. The tests below pin the state, and report such a failure by
hand to show it would be ignored."""

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


@pytest.mark.parametrize("path", ["/seal/x", "/seal/big?size=524288"], ids=["read-whole", "streamed"])
def test_a_probe_answered_whole_leaves_no_ticket_to_reopen_with(start_edge, path):
    edge = start_edge(GATEWAY_BREAKER_FAILURES=1, GATEWAY_BREAKER_OPEN=0.05)
    breaker, probe = _opened(edge)
    answer = requests.get(edge.url + path, headers=edge.tokens.bearer(aud="xsn:seal"))
    assert answer.status_code == 200 and answer.content
    assert (breaker.state, breaker.closer) == ("closed", None)
    edge.call(breaker.failure, probe)  # whatever comes later under that ticket is not its body breaking off
    assert breaker.state == "closed"


def test_a_probe_whose_streamed_body_breaks_off_opens_the_circuit_again(start_edge):
    edge = start_edge(GATEWAY_BREAKER_FAILURES=1, GATEWAY_BREAKER_OPEN=0.05)
    breaker, _probe = _opened(edge)
    token = edge.tokens.bearer(aud="xsn:seal")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{edge.url}/seal/cut", headers=token).content  # noqa: B018 - read the body
    assert breaker.state == "open"
    opened = requests.get(f"{edge.url}/seal/x", headers=token)
    assert opened.status_code == 503 and opened.json()["code"] == "upstream_circuit_open"


def test_only_the_closing_probe_s_whole_body_clears_its_ticket():
    breaker = Breaker(failures=1, open_s=0)
    slow = breaker.before()  # in flight when the breaker opens
    breaker.failure(breaker.before())
    probe = breaker.before()
    breaker.success(probe)
    breaker.body_read(slow)  # an older answer arriving whole says nothing about the probe's
    assert breaker.closer == probe
    breaker.body_read(probe)
    assert breaker.closer is None
    breaker.failure(probe)
    assert (breaker.state, breaker.consecutive) == ("closed", 0)
