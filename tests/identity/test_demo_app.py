"""The demo government app starts a code + PKCE login at the identity node it discovers."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from identity import demo_app


@pytest.fixture
def demo(make_app, serve_app, monkeypatch):
    identity = make_app("identity")
    identity_url = identity.config["OAUTH_ISSUER"] = serve_app(identity)  # its discovery names this issuer
    monkeypatch.setenv("XSN_OAUTH_ISSUER", identity_url)
    app = demo_app.create_app()
    return app.test_client()


def test_home_offers_login_in_chinese_and_english(demo):
    assert "使用西安统一身份认证登录" in demo.get("/").get_data(as_text=True)
    assert "Log in with Xi&#39;an unified identity" in demo.get("/?lang=en").get_data(as_text=True)


def test_login_redirects_with_pkce_s256_state_and_nonce(demo):
    response = demo.post("/login")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.path.endswith("/oauth/authorize")
    assert query["client_id"] == demo_app.CLIENT_ID
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"] and "openid" in query["scope"].split()


def test_callback_with_wrong_state_is_refused(demo):
    demo.post("/login")
    response = demo.get("/callback?code=x&state=forged")
    assert response.status_code == 400


def test_a_provider_naming_another_issuer_is_an_error_page(make_app, serve_app, monkeypatch):
    monkeypatch.setenv("XSN_OAUTH_ISSUER", serve_app(make_app("identity")))  # it says it is .../identity
    response = demo_app.create_app().test_client().post("/login")
    assert response.status_code == 503 and "oidc_issuer_mismatch" in response.get_data(as_text=True)
