"""The circuit breaker: opens after consecutive failures, probes one request at a time."""

from __future__ import annotations

import pytest

from gateway.edge.problems import CircuitOpen
from gateway.edge.upstreams import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_half_open():
    clock = Clock()
    breaker = Breaker(failures=3, open_s=5, clock=clock)
    for _ in range(2):
        breaker.before()
        breaker.failure()
    breaker.before()
    breaker.success()  # a success resets the count
    for _ in range(3):
        breaker.before()
        breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before()
    clock.now += 5
    breaker.before()  # the probe
    assert breaker.state == "half_open"
    with pytest.raises(CircuitOpen):
        breaker.before()  # one probe at a time
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 5
    breaker.before()
    breaker.success()
    assert breaker.state == "closed"
    breaker.before()


def test_a_probe_without_verdict_frees_its_slot():
    clock = Clock()
    breaker = Breaker(failures=1, open_s=1, clock=clock)
    breaker.before()
    breaker.failure()
    clock.now += 1
    breaker.before()
    breaker.release()
    breaker.before()
