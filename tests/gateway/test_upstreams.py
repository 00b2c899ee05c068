"""The circuit breaker: opens after consecutive failures, probes one request at a time, counts
a burst of failures of one cause once."""

from __future__ import annotations

import pytest

from gateway.edge.problems import CircuitOpen
from gateway.edge.upstreams import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fail(breaker: Breaker) -> None:
    """One request sent and failed on its own (nothing else in flight)."""
    breaker.failure(breaker.before())


def test_opens_after_consecutive_failures_and_probes_half_open():
    clock = Clock()
    breaker = Breaker(failures=3, open_s=5, clock=clock)
    for _ in range(2):
        _fail(breaker)
    breaker.success(breaker.before())  # a success resets the count
    for _ in range(3):
        _fail(breaker)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before()
    clock.now += 5
    probe = breaker.before()
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpen):
        breaker.before()  # one probe at a time
    breaker.failure(probe)
    assert breaker.state == "open"
    clock.now += 5
    breaker.success(breaker.before())
    assert breaker.state == "closed"
    breaker.before()


def test_a_probe_without_verdict_frees_its_slot():
    clock = Clock()
    breaker = Breaker(failures=1, open_s=1, clock=clock)
    _fail(breaker)
    clock.now += 1
    breaker.release(breaker.before())
    breaker.before()


def test_a_burst_of_failures_in_flight_together_counts_once():
    """Six requests of one group commit, or on the connections of one worker that died, fail
    together from one cause: one failure, not six consecutive ones."""
    clock = Clock()
    breaker = Breaker(failures=5, clock=clock)
    tickets = [breaker.before() for _ in range(6)]
    for ticket in tickets:
        breaker.failure(ticket)
    assert (breaker.state, breaker.consecutive) == ("closed", 1)
    breaker.before()  # still forwarding


def test_a_dead_service_still_opens_with_many_clients():
    """32 clients at once against a service that refuses every connection: each round's first
    failure counts (its request was sent after the last counted one was seen), the breaker opens."""
    breaker = Breaker(failures=5, clock=Clock())
    for _round in range(5):
        tickets = [breaker.before() for _ in range(32)]
        for ticket in tickets:
            breaker.failure(ticket)
    assert breaker.state == "open"


def test_a_hung_service_opens_as_its_timeouts_come_one_by_one():
    """Requests sent before the first timeout time out one after another: those at least
    ``burst_s`` apart each count."""
    clock = Clock()
    breaker = Breaker(failures=3, burst_s=0.1, clock=clock)
    tickets = [breaker.before() for _ in range(30)]
    for ticket in tickets:
        breaker.failure(ticket)
        clock.now += 0.05  # one timeout every 50 ms, as the requests were sent
    assert breaker.state == "open"
    assert breaker.consecutive == 3


def test_an_answer_from_before_the_circuit_opened_does_not_close_it_or_free_the_probe():
    clock = Clock()
    breaker = Breaker(failures=1, open_s=1, clock=clock)
    slow = breaker.before()  # a slow request, still in flight when the breaker opens
    _fail(breaker)
    assert breaker.state == "open"
    breaker.success(slow)
    assert breaker.state == "open"
    clock.now += 1
    probe = breaker.before()
    breaker.release(slow)  # the slow one's client went away: the probe's slot stays taken
    with pytest.raises(CircuitOpen):
        breaker.before()
    breaker.failure(slow)  # nor does its failure reopen the breaker over the probe
    assert breaker.state == "half_open"
    breaker.success(probe)
    assert breaker.state == "closed"


def test_a_failure_from_before_the_circuit_opened_does_not_reopen_what_a_probe_closed():
    clock = Clock()
    breaker = Breaker(failures=1, open_s=1, clock=clock)
    slow = breaker.before()  # in flight to the broken service when the breaker opens
    _fail(breaker)
    clock.now += 1
    breaker.success(breaker.before())  # the probe: the service is back
    assert breaker.state == "closed"
    clock.now += 1  # long after any burst
    breaker.failure(slow)  # the slow one times out at last
    assert (breaker.state, breaker.consecutive) == ("closed", 0)
    breaker.before()


def _closed_by_a_probe():
    """``(clock, breaker, probe)``: a breaker opened by five failures, then closed by ``probe``'s
    answer head one ``open_s`` later."""
    clock = Clock()
    breaker = Breaker(failures=5, open_s=1, clock=clock)
    for _ in range(5):
        _fail(breaker)
    clock.now += 1
    probe = breaker.before()
    breaker.success(probe)
    return clock, breaker, probe


def test_a_probe_whose_body_breaks_off_opens_the_breaker_again():
    """The probe's verdict is taken at its answer's head: a body that then breaks off reopens it."""
    clock, breaker, probe = _closed_by_a_probe()  # closed at the probe's answer head
    assert breaker.state == "closed"
    breaker.failure(probe)  # then its body broke off (``Upstream.broke_off``)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before()
    clock.now += 1
    probe = breaker.before()
    breaker.success(probe)
    breaker.failure(breaker.before())  # after the probe: an ordinary failure, counted once
    assert (breaker.state, breaker.consecutive) == ("closed", 1)


def test_a_probe_body_breaking_off_after_a_newer_answer_does_not_reopen():
    """A newer request answered after the probe closed the breaker: the service is back, so the
    probe's long stream breaking off minutes later says nothing on its own."""
    clock, breaker, probe = _closed_by_a_probe()
    breaker.success(breaker.before())  # a newer request answered
    clock.now += 300
    breaker.failure(probe)  # the probe's streamed body breaks off at last
    assert (breaker.state, breaker.consecutive) == ("closed", 0)
    breaker.before()
