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


def test_a_citizen_logs_in_refreshes_and_logs_out(seeded_identity_app, serve_app, monkeypatch):
    """The whole flow against a real identity node over HTTP: the code is exchanged, the ID
    token passes every check of common.oidc_client, userinfo and refresh work."""
    from common.oidc_client import OpenIDProvider
    from tests.support.oauth import Browser

    refreshed = []
    real_refresh = OpenIDProvider.refresh

    def refresh(self, *args):
        refreshed.append(real_refresh(self, *args))
        return refreshed[-1]

    monkeypatch.setattr(OpenIDProvider, "refresh", refresh)
    identity = seeded_identity_app()
    identity_url = identity.config["OAUTH_ISSUER"] = serve_app(identity)
    monkeypatch.setenv("XSN_OAUTH_ISSUER", identity_url)
    demo = demo_app.create_app().test_client()
    demo_host = "http://127.0.0.1:8765"  # the redirect URI identity's seed registers for the demo app
    start = demo.post("/login", base_url=demo_host)
    assert start.headers["Location"].startswith(f"{identity_url}/oauth/authorize?")

    browser = Browser(identity)
    browser.login("13800001234")  # 张三
    authorize = start.headers["Location"][len(identity_url):]
    answer = browser.client.get(authorize)
    if answer.status_code == 200:
        answer = browser.consent(authorize)
    callback = answer.headers["Location"]
    assert callback.startswith(f"{demo_host}/callback?")
    landed = demo.get(callback[len(demo_host):], base_url=demo_host)
    assert landed.status_code == 302 and landed.headers["Location"] == "/"
    home = demo.get("/", base_url=demo_host).get_data(as_text=True)
    assert "您好，张三" in home and 'role="alert"' not in home

    assert demo.post("/refresh", base_url=demo_host).headers["Location"] == "/"
    assert len(refreshed) == 1 and refreshed[0]["access_token"]
    assert "您好，张三" in demo.get("/", base_url=demo_host).get_data(as_text=True)
    logout = demo.post("/logout", base_url=demo_host)
    assert logout.headers["Location"].startswith(f"{identity_url}/oauth/logout?")
    assert "使用西安统一身份认证登录" in demo.get("/", base_url=demo_host).get_data(as_text=True)
