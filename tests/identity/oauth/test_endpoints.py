"""Introspection and revocation (identity.oauth.endpoints) and userinfo (identity.oauth.userinfo)."""

from __future__ import annotations

import pytest

from tests.support.oauth import (
    ISSUER,
    LI,
    Browser,
    exchange,
    pkce_pair,
    register,
)


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


def test_introspection_and_revocation(app):
    client_id, secret = register(app, skip_consent=True, grant_types=["authorization_code", "refresh_token"])
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge)
    body = exchange(app, client_id, code, verifier, secret=secret).get_json()
    http = app.test_client()
    info = http.post("/oauth/introspect", data={"token": body["access_token"]}, auth=(client_id, secret)).get_json()
    assert info["active"] is True and info["client_id"] == client_id and info["iss"] == ISSUER
    info = http.post("/oauth/introspect", data={"token": body["refresh_token"], "token_type_hint": "refresh_token"},
                     auth=(client_id, secret)).get_json()
    assert info["active"] is True and info["token_type"] == "refresh_token"
    assert http.post("/oauth/introspect", data={"token": "garbage"}, auth=(client_id, secret)).get_json() == {
        "active": False}
    assert http.post("/oauth/introspect", data={"token": body["access_token"]}).status_code == 401  # no client auth

    assert http.post("/oauth/revoke", data={"token": body["access_token"]}, auth=(client_id, secret)).status_code == 200
    assert http.post("/oauth/introspect", data={"token": body["access_token"]},
                     auth=(client_id, secret)).get_json() == {"active": False}
    userinfo = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.status_code == 401 and userinfo.get_json()["error"] == "invalid_token"
    revoked = http.post("/oauth/revoke", data={"token": body["refresh_token"]}, auth=(client_id, secret))
    assert revoked.status_code == 200
    refreshed = http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                          auth=(client_id, secret))
    assert refreshed.get_json()["error"] == "invalid_grant"


def test_userinfo_needs_openid_token(app):
    from identity.oauth.seed import demo_secret

    with app.app_context():
        from common.crypto.keystore import load_kek

        secret = demo_secret(load_kek(app.config), "xsn-messaging")
    token = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=("xsn-messaging", secret)).get_json()["access_token"]
    response = app.test_client().get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.get_json()["error"] == "insufficient_scope"
    assert app.test_client().get("/oauth/userinfo").status_code == 401
