"""The auditor console: sign in through a real identity node (audit:read), find a request by its
request id, see the seal node's signature log beside it (over seal's auditor API), views audited."""

from __future__ import annotations

import json

import pytest

from common.db import get_db
from gateway.audit import log
from tests.gateway.conftest import console_client
from tests.support.console import GATEWAY, WANG, ZHANG, GatewayBrowser

CONSOLE = "/audit/console/"


@pytest.fixture
def identity(make_app, serve_app):
    from identity.seed import seed
    from tests.support.console import IDENTITY_TEST_CONFIG

    app = make_app("identity", PUBLIC_BASE_URL=GATEWAY, **IDENTITY_TEST_CONFIG)
    with app.app_context():
        seed(app)  # writes var/clients.json (xsn-auditor's secret, read by the gateway app)
    return app, serve_app(app)


@pytest.fixture
def seal_url(make_app, serve_app, identity):
    from seal.log import appends as seal_log

    app = make_app("seal", PUBLIC_BASE_URL=GATEWAY, IDENTITY_URL=identity[1])
    with get_db(app).session() as session:
        for i in range(3):
            seal_log.append_event(session, {"type": "sign", "time": f"2026-12-01T02:00:0{i}Z", "seal_id": "s1",
                                            "seal_code": "6101260200000001", "signer": "svc-licenses",
                                            "client_id": "xsn-licenses", "document_digest": "ab" * 32,
                                            "signature_digest": "cd" * 32, "request_id": f"seal-r{i}"})
        session.commit()
    return serve_app(app)


@pytest.fixture
def app(make_app, identity, seal_url):
    identity_app, identity_url = identity
    secret = console_client(identity_app, GATEWAY)  # seeded by identity; pointed at this test's gateway
    app = make_app("gateway", PUBLIC_BASE_URL=GATEWAY, IDENTITY_URL=identity_url, SEAL_URL=seal_url,
                   CONSOLE_CLIENT_SECRET=secret, HTTP_TIMEOUT=30)  # calls to identity and seal on a busy machine
    with get_db(app).session() as session:
        log.append_records(session, [
            {"kind": "request", "time": f"2026-12-01T03:00:0{i}+00:00", "request_id": f"edge-{i}",
             "client_id": "xian-demo-app", "subject": "person-9", "method": "GET", "route": "/licenses/**",
             "path": f"/licenses/licenses/{i}", "status": 200, "outcome": "ok", "upstream": "licenses"}
            for i in range(5)])
        session.commit()
    return app


def browser(app, identity) -> GatewayBrowser:
    return GatewayBrowser(app, identity[1], service="gateway")


def test_sign_in_is_required(app):
    assert app.test_client().get(CONSOLE).headers["Location"].startswith("/audit/console/login?next=")


def test_auditor_finds_a_request_by_request_id_and_sees_the_seal_log(app, identity):
    person = browser(app, identity)
    status, page = person.sign_in(CONSOLE, WANG)
    assert status == 200 and "统一审计控制台" in page and "已登录： 王五" in page  # the consoles' one wording
    assert "接入网关调用审计日志" in page and "电子印章签章日志" in page
    assert "seal-r2" in page and 'id="seal-tree-size">3<' in page  # read over seal's auditor API
    status, found = person.go(f"{GATEWAY}/gateway{CONSOLE}?request_id=edge-3")
    assert status == 200 and "检索结果（共 1 条）" in found
    assert "/licenses/licenses/3" in found and "edge-2" not in found
    assert "2026-12-01 11:00:03" in found  # 03:00:03 UTC, shown in Beijing time
    assert '<td data-outcome="ok">成功</td>' in found  # the outcome in the page's language
    status, english = person.go(f"{GATEWAY}/gateway{CONSOLE}?request_id=edge-3&lang=en")
    assert "Results (1 in all)" in english and "Seal signature log" in english and "Signed in as 王五" in english
    # The consoles' shared frame (common/web/templates/console/base.html): sign-out in both languages.
    assert '<form method="post" action="/gateway/audit/console/logout"' in page and ">退出</button>" in page
    assert ">Sign out</button>" in english
    assert '<td data-outcome="ok">OK</td>' in english
    status, bad = person.go(f"{GATEWAY}/gateway{CONSOLE}?status=abc&since=yesterday&lang=zh")
    assert status == 200 and "检索条件有误，请检查：起始时间、状态码" in bad and "Not a valid" not in bad
    with get_db(app).session() as session:
        views = [json.loads(r.leaf) for r in log.search(session, log.SearchQuery(kind="audit_query"))[0]]
    assert len(views) == 4 and {v["route"] for v in views} == {"audit:console.index"}
    assert all(v["subject"] and v["status"] == 200 for v in views)
    assert any(v["query"] == {"request_id": ["edge-3"]} for v in views)


def test_a_person_without_audit_read_is_refused_and_recorded(app, identity):
    status, page = browser(app, identity).sign_in(CONSOLE, ZHANG)
    assert status == 403 and "audit:read" in page
    with get_db(app).session() as session:
        [view] = [json.loads(r.leaf) for r in log.search(session, log.SearchQuery(kind="audit_query"))[0]]
    assert (view["status"], view["outcome"]) == (403, "denied")


def test_the_seal_log_being_unreachable_does_not_hide_the_gateway_log(app, identity):
    app.config["SERVICE_URLS"] = {**app.config["SERVICE_URLS"], "seal": "http://127.0.0.1:9"}
    status, page = browser(app, identity).sign_in(CONSOLE, WANG)
    assert status == 200 and "暂时无法读取签章日志" in page and "edge-4" in page


def test_a_stale_cached_seal_token_is_replaced(app, identity):
    """A token cached from an earlier identity (or revoked since) answers 401 at seal: fetch a new one."""
    import time

    from gateway.audit import pages, seal_log

    with app.app_context():
        credentials = pages.seal_log().credentials
    credentials._tokens[(seal_log.AUDIENCE, seal_log.SCOPE)] = (time.monotonic() + 600, "not-a-token")
    status, page = browser(app, identity).sign_in(CONSOLE, WANG)
    assert status == 200 and "seal-r2" in page


def test_a_failure_inside_the_page_is_an_error_page_not_a_problem_document(app, identity, monkeypatch):
    person = browser(app, identity)
    assert person.sign_in(CONSOLE, WANG)[0] == 200

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug's own words")

    monkeypatch.setattr(log, "search", broken)
    status, page = person.go(f"{GATEWAY}/gateway{CONSOLE}?request_id=edge-3")
    assert status == 500 and 'data-code="internal_error"' in page and "请求编号" in page
    assert "返回审计控制台" in page and "a bug" not in page
