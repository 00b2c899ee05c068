"""A connect that hangs (a service whose accept queue is full) ends with the request's deadline,
not after the per-attempt connect timeout: ``Pool.request`` cuts the one to the other, for every
caller."""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager

import pytest

from gateway.edge.problems import UpstreamUnavailable
from gateway.edge.upstream_http import Pool, UpstreamError
from gateway.edge.upstreams import Breaker, Upstream
from tests.gateway.conftest import run_async


@contextmanager
def _a_port_whose_connects_hang():
    """A listener that never accepts, its queue (one connection on Linux at backlog 0) filled:
    further connects get no answer to their SYN and hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = socket.create_connection(("127.0.0.1", port))
    try:
        probe = socket.socket()
        probe.settimeout(0.2)
        try:
            probe.connect(("127.0.0.1", port))
            pytest.skip("this system accepted a connect beyond the listen queue")
        except TimeoutError:
            pass
        finally:
            probe.close()
        yield port
    finally:
        held.close()
        listener.close()


def test_the_pool_cuts_a_hanging_connect_to_the_request_timeout():
    with _a_port_whose_connects_hang() as port:

        async def scenario():
            pool = Pool("127.0.0.1", port)
            started = time.monotonic()
            with pytest.raises(UpstreamError) as failed:
                await pool.request("GET", "/", [], b"", timeout_s=0.3, connect_timeout_s=5.0)
            return time.monotonic() - started, failed.value.sent

        elapsed, sent = run_async(scenario())
    assert sent is False  # nothing went out: no connection
    assert 0.25 < elapsed < 1.0  # 0.3 s, not the 5 s connect timeout


def test_a_hanging_connect_costs_the_client_the_route_timeout_once():
    """Through ``Upstream.send``: a GET is tried again after a connect that failed, but the
    attempts share the route's one deadline, so it is 502 (the service did not accept) after it."""
    with _a_port_whose_connects_hang() as port:

        async def scenario():
            upstream = Upstream("x", f"http://127.0.0.1:{port}", retries=2, breaker=Breaker(failures=5))
            started = time.monotonic()
            try:
                with pytest.raises(UpstreamUnavailable):
                    await upstream.send("GET", "/", [], b"", timeout_s=0.3)
            finally:
                await upstream.close()
            return time.monotonic() - started

        elapsed = run_async(scenario())
    assert 0.25 < elapsed < 1.0  # not CONNECT_TIMEOUT_S (2 s) per attempt

