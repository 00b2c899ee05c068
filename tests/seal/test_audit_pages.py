"""The auditor console: sign in with an audit:read token, search, open an entry, see its proof checked."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from common.db import get_db
from common.gm import sm3
from common.testing import TokenFactory
from seal import log


@pytest.fixture
def app(make_app, material):
    app = make_app("seal", SEAL_LOG_CHECKPOINT_INTERVAL=0)
    app.tokens = TokenFactory()
    app.tokens.install(app)
    with get_db(app).session() as session:
        for i in range(4):
            log.append_event(session, {
                "type": "sign", "time": f"2026-08-01T02:00:0{i}Z", "seal_id": "s1",
                "seal_code": "6101260200000001" if i % 2 else "6101260200000002", "org_code": "91610113MA6TXX0010",
                "signer": "svc-licenses", "client_id": "xsn-licenses", "document_digest": material.digest.hex(),
                "signature_digest": sm3(material.signature_der).hex(), "request_id": f"r{i}"},
                ses_der=material.signature_der)
        session.commit()
    return app


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def browser(app):
    """A test client signed in as an auditor through the login form."""
    client = app.test_client()
    page = client.get("/audit/login")
    token = app.tokens.token(sub="auditor-9", scope="audit:read", client_id="audit-console")
    response = client.post("/audit/login", data={"token": token, "csrf_token": csrf(page.get_data(as_text=True))})
    assert response.status_code == 302
    return client


def test_console_requires_sign_in(app):
    client = app.test_client()
    assert client.get("/audit/").headers["Location"].endswith("/audit/login")
    assert client.get("/audit/entries/0").headers["Location"].endswith("/audit/login")


@pytest.mark.parametrize("scope, message", [("seal:sign", "audit:read"), (None, "无效")])
def test_sign_in_refuses_tokens_without_audit_read(app, scope, message):
    client = app.test_client()
    html = client.get("/audit/login").get_data(as_text=True)
    token = app.tokens.token(scope=scope) if scope else "not-a-token"
    response = client.post("/audit/login", data={"token": token, "csrf_token": csrf(html)})
    assert response.status_code == 401
    assert message in response.get_data(as_text=True)


def test_sign_in_needs_the_csrf_token(app):
    response = app.test_client().post("/audit/login", data={"token": app.tokens.token(scope="audit:read")})
    assert response.status_code == 400


def test_search_and_open_an_entry_with_its_proof_checked(app, browser):
    html = browser.get("/audit/?seal_code=6101260200000001").get_data(as_text=True)
    assert "签章日志审计控制台" in html
    assert "检索结果（共 2 条）" in html
    assert 'href="/audit/entries/3"' in html and 'href="/audit/entries/1"' in html
    assert 'href="/audit/entries/2"' not in html
    entry = browser.get("/audit/entries/3").get_data(as_text=True)
    assert "全部校验通过" in entry
    for step in ("checkpoint signature", "entry 3: inclusion", "entry 3: signature digest", "entry 3: SES signature"):
        assert step in entry
    assert entry.count("✘") == 0
    english = browser.get("/audit/entries/3?lang=en").get_data(as_text=True)
    assert "Every check passed" in english and "Inclusion proof" in english


def test_a_tampered_entry_shows_the_failed_step(app, browser):
    with get_db(app).engine.begin() as conn:
        conn.execute(text("UPDATE log_entries SET leaf = replace(leaf, 'r2', 'rX') WHERE leaf_index = 2"))
    html = browser.get("/audit/entries/2").get_data(as_text=True)
    assert "存在未通过的校验" in html
    assert "✘" in html and "the stated leaf hash is not SM3(0x00 || leaf)" in html


def test_bad_search_input_is_explained_and_console_views_are_audited(app, browser):
    html = browser.get("/audit/?document_digest=xyz").get_data(as_text=True)
    assert "检索条件有误" in html
    browser.get("/audit/?since=2026-08-01T10:00:01")  # Beijing time: 02:00:01 UTC
    api = app.test_client().get("/log/audit-queries", headers=app.tokens.bearer(scope="audit:read")).get_json()
    console = [q for q in api["items"] if q["action"].startswith("console.")]
    assert {q["subject"] for q in console} == {"auditor-9"}
    assert len(console) == 2


def test_unknown_entry_goes_back_to_the_search(browser):
    response = browser.get("/audit/entries/99")
    assert response.status_code == 302 and response.headers["Location"].endswith("/audit/")


def test_sign_out(browser):
    html = browser.get("/audit/").get_data(as_text=True)
    browser.post("/audit/logout", data={"csrf_token": csrf(html)})
    assert browser.get("/audit/").status_code == 302
