"""The auditor console in Chromium: sign in at a real identity node, find a request by its request id,
see the seal signature log beside the gateway's audit log.

The gateway, identity and seal apps are served on one port under their prefixes (``/gateway``,
``/identity``, ``/seal``), as the edge lays them out, so the browser follows the real redirects
of the OpenID Connect sign-in. The edge process itself is the gateway engineer's; this test is
about the page.
"""

from __future__ import annotations

import os

import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from common.db import get_db
from gateway.audit import log
from tests.gateway.conftest import console_client
from tests.support.console import IDENTITY_TEST_CONFIG, WANG
from tests.support.suite import Served, free_port

pytestmark = [pytest.mark.browser]
PASSWORD = "demo-password-1"  # noqa: S105 - the demo accounts' published password


@pytest.fixture
def site(make_app):
    """``(base URL, gateway app)``: one HTTP server with the three apps under their prefixes."""
    from identity.seed import seed
    from seal.log import appends as seal_log

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = {"IDENTITY_URL": f"{base}/identity", "SEAL_URL": f"{base}/seal", "PUBLIC_BASE_URL": base,
            "PROXY_HOPS": 0}
    identity = make_app("identity", **urls, **IDENTITY_TEST_CONFIG)
    with identity.app_context():
        seed(identity)
    secret = console_client(identity, base)  # seeded by identity; pointed at this test's gateway
    seal = make_app("seal", **urls)
    with get_db(seal).session() as session:
        seal_log.append_event(session, {"type": "sign", "time": "2026-12-01T02:00:00Z", "seal_id": "s1",
                                        "seal_code": "6101260200000001", "signer": "svc-licenses",
                                        "client_id": "xsn-licenses", "document_digest": "ab" * 32,
                                        "signature_digest": "cd" * 32, "request_id": "seal-request-1"})
        session.commit()
    gateway = make_app("gateway", **urls, CONSOLE_CLIENT_SECRET=secret, HTTP_TIMEOUT=30)  # a busy test machine
    with get_db(gateway).session() as session:
        log.append_records(session, [
            {"kind": "request", "time": f"2026-12-01T03:00:0{i}+00:00", "request_id": f"edge-{i}",
             "client_id": "xian-demo-app", "subject": "person-9", "method": "POST", "route": "/payment/notices",
             "path": "/payment/notices", "status": 201 if i else 429, "outcome": "ok" if i else "rejected",
             "upstream": "payment"} for i in range(6)])
        session.commit()
    app = DispatcherMiddleware(lambda environ, start: (start("404 Not Found", []), [b""])[1],
                               {"/identity": identity, "/seal": seal, "/gateway": gateway})
    with Served(app, port=port):
        yield base, gateway


def test_auditor_finds_a_request_by_its_request_id_in_chromium(site, browser):
    base, _gateway = site
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{base}/gateway/audit/console/")
        assert "/identity/login" in page.url, page.url
        page.fill("input[name=login]", WANG)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{base}/gateway/audit/console/")
        assert "统一审计控制台" in page.title() or "统一审计控制台" in page.inner_text("body")
        assert page.inner_text("#seal-tree-size") == "1"
        assert "seal-request-1" in page.inner_text("#seal-entries")
        page.fill("#request_id", "edge-0")
        page.click("#gateway-log form button[type=submit]")
        page.wait_for_load_state()
        rows = page.locator("#gateway-records tbody tr")
        assert rows.count() == 1
        assert "edge-0" in rows.first.inner_text() and "429" in rows.first.inner_text()
        if os.environ.get("XSN_TEST_SCREENSHOTS"):
            page.screenshot(path=os.path.join(os.environ["XSN_TEST_SCREENSHOTS"], "gateway-audit-console.png"),
                            full_page=True)
        page.goto(f"{base}/gateway/audit/console/?request_id=edge-0&lang=en")
        assert "Gateway call audit log" in page.inner_text("body")
    finally:
        context.close()
