"""The edge logs a caught exception by its type (``error_type``), never its message, which may
quote a URL's credentials or a key (docs/ARCHITECTURE.md, ``common.web.observability``); an
unexpected one adds its traceback with every exception named by its type only."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import requests
from structlog.testing import capture_logs

from gateway.edge.audit_sink import MemoryAuditSink
from gateway.edge.revocations import RevocationFeed, subscribe_forever
from gateway.edge.tokens import RevocationList
from tests.gateway.conftest import run_async

SECRET = "postgresql://audit:s3cret@db.internal/xsn"


class LeakySink(MemoryAuditSink):
    async def record(self, record):
        raise RuntimeError(f"cannot write to {SECRET}")


def test_a_failed_audit_record_is_logged_by_its_type(start_edge):
    edge = start_edge(sink=LeakySink())
    with capture_logs() as captured:
        response = requests.get(f"{edge.url}/seal/x", headers=edge.tokens.bearer(aud="xsn:seal"), timeout=5)
    assert response.status_code == 503
    failed = [e for e in captured if e["event"] == "audit_record_failed"]
    assert failed and {e["error_type"] for e in failed} == {"RuntimeError"} and "s3cret" not in repr(captured)


def test_an_unexpected_error_is_logged_with_its_frames_not_its_message(start_edge, monkeypatch):
    edge = start_edge()

    async def broken(request, exchange):
        raise KeyError(SECRET)

    monkeypatch.setattr(edge.gateway, "_forward", broken)
    with capture_logs() as captured:
        response = requests.get(f"{edge.url}/seal/x", timeout=5)
    assert response.status_code == 500
    [logged] = [e for e in captured if e["event"] == "gateway_internal_error"]
    assert logged["error_type"] == "KeyError" and "in broken" in logged["traceback"]
    assert "s3cret" not in repr(captured) and "exc_info" not in logged


def test_a_failed_revocation_poll_is_logged_by_its_type():
    async def main():
        async with aiohttp.ClientSession() as session:
            feed = RevocationFeed(RevocationList(), identity_url="http://127.0.0.1:1", client_id="xsn-gateway",
                                  client_secret="s3cret", session=session, interval=5)

            async def leaky():
                raise RuntimeError(f"token endpoint answered 400: {SECRET}")

            feed.poll_once = leaky
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.poll_forever(), 0.2)

    with capture_logs() as captured:
        run_async(main)
    assert [(e["event"], e["error_type"]) for e in captured] == [("revocation_poll_failed", "RuntimeError")]
    assert "s3cret" not in repr(captured)


def test_a_failed_revocation_subscription_is_logged_by_its_type():
    async def main():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribe_forever(RevocationList(), "redis://gw:s3cret@127.0.0.1:1/0"), 0.5)

    with capture_logs() as captured:
        run_async(main)
    assert captured and {(e["event"], e["error_type"]) for e in captured} == {
        ("revocation_subscription_failed", "ConnectionError")}
    assert not any("error" in e for e in captured)
