"""The grants end to end: code + PKCE, ID tokens, refresh, client credentials (identity.oauth.grants, .issuing)."""

from __future__ import annotations

import pytest
from joserfc import jwt

from common.web.auth import InvalidToken, JWKSCache, TokenVerifier
from tests.support.oauth import (
    ISSUER,
    LI,
    Browser,
    decode,
    exchange,
    jwks_of,
    pkce_pair,
    refresh,
    register,
)


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


def test_code_flow_with_pkce_userinfo_refresh_and_logout(app):
    client_id, _ = register(app, client_type="public", audiences=["xsn:licenses"])
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, callback = browser.code(client_id, challenge, scope="openid profile idcard offline_access",
                                  nonce="n-0S6_WzA2Mj", state="opaque-state")
    assert callback["state"] == "opaque-state"
    response = exchange(app, client_id, code, verifier)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"

    header = jwt.decode(body["access_token"], jwks_of(app))
    assert header.header["typ"] == "at+jwt" and header.header["alg"] == "ES256"
    access = header.claims
    assert access["iss"] == ISSUER and access["client_id"] == client_id
    assert set(access["aud"]) == {"xsn:licenses", "xsn:identity"}
    assert access["acr"] == "urn:xsn:acr:L2" and isinstance(access["auth_time"], int)
    assert {"jti", "iat", "exp", "sub", "scope"} <= set(access)

    id_token = decode(app, body["id_token"])
    assert id_token["aud"] == client_id and id_token["nonce"] == "n-0S6_WzA2Mj"
    assert id_token["sub"] == access["sub"] and id_token["name"] == "李四"
    assert id_token["id_number"] == "6101**********4567"  # masked without idcard:full
    assert "at_hash" in id_token and id_token["acr"] == "urn:xsn:acr:L2"

    info = app.test_client().get("/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.get_json()["sub"] == access["sub"]

    refreshed = app.test_client().post("/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                             "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_json()
    assert refreshed.get_json()["refresh_token"] != body["refresh_token"]  # rotated
    assert decode(app, refreshed.get_json()["access_token"])["auth_time"] == access["auth_time"]

    out = browser.client.get("/oauth/logout", query_string={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:8765/", "state": "bye"})
    assert out.status_code == 302 and out.headers["Location"] == "http://127.0.0.1:8765/?state=bye"
    # The session's refresh tokens are gone and the browser is logged out.
    again = app.test_client().post("/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                         "refresh_token": refreshed.get_json()["refresh_token"]})
    assert again.get_json()["error"] == "invalid_grant"
    assert browser.client.get(browser.authorize_url(client_id, challenge=challenge)).status_code == 302
    assert "/login" in browser.client.get(browser.authorize_url(client_id, challenge=challenge)).headers["Location"]


def test_confidential_client_rs256_id_token(app):
    client_id, secret = register(app, id_token_alg="RS256", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, nonce="abc")
    body = exchange(app, client_id, code, verifier, secret=secret).get_json()
    token = jwt.decode(body["id_token"], jwks_of(app))
    assert token.header["alg"] == "RS256" and token.claims["nonce"] == "abc"


def test_refresh_returns_a_new_id_token_for_an_openid_grant(app):
    """OIDC Core §12.2: same iss, sub, aud; original auth_time; no nonce; a fresh iat and at_hash."""
    from identity.oauth.tokens import half_hash

    client_id, secret = register(app, id_token_alg="RS256", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, scope="openid profile offline_access", nonce="first-nonce")
    first = exchange(app, client_id, code, verifier, secret=secret).get_json()
    original = decode(app, first["id_token"])

    response = refresh(app, client_id, first["refresh_token"], secret)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    token = jwt.decode(body["id_token"], jwks_of(app))
    assert token.header["alg"] == "RS256" and token.header["typ"] == "JWT"
    renewed = token.claims
    for claim in ("iss", "sub", "aud", "azp", "auth_time", "acr", "amr", "sid", "name"):
        assert renewed[claim] == original[claim], claim
    assert "nonce" not in renewed and original["nonce"] == "first-nonce"
    assert renewed["iat"] >= original["iat"] and renewed["exp"] > renewed["iat"]
    assert renewed["at_hash"] == half_hash(body["access_token"], "RS256") != original["at_hash"]
    # Narrowed to a scope without openid: no ID token.
    narrowed = refresh(app, client_id, body["refresh_token"], secret, scope="profile").get_json()
    assert "access_token" in narrowed and "id_token" not in narrowed


def test_refresh_of_a_grant_without_openid_has_no_id_token(app):
    client_id, _ = register(app, client_type="public", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, scope="profile offline_access")
    first = exchange(app, client_id, code, verifier).get_json()
    assert "id_token" not in first
    body = refresh(app, client_id, first["refresh_token"]).get_json()
    assert "access_token" in body and "id_token" not in body


def test_client_credentials_token_verifies_with_common_verifier(app):
    from identity.oauth.seed import demo_secret

    with app.app_context():
        from common.crypto.keystore import load_kek

        secret = demo_secret(load_kek(app.config), "xsn-licenses")
    response = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials", "resource": "xsn:seal"},
                                      auth=("xsn-licenses", secret))
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["access_token"]
    assert "refresh_token" not in response.get_json()
    verifier = TokenVerifier(issuer=ISSUER, audience="xsn:seal",
                             jwks=JWKSCache(lambda: app.test_client().get("/jwks.json").get_json()))
    claims = verifier.verify(token)
    assert claims["sub"] == "xsn-licenses" and claims["aud"] == "xsn:seal"
    assert "seal:sign" in claims["scope"].split()
    other = TokenVerifier(issuer=ISSUER, audience="xsn:payment",
                          jwks=JWKSCache(lambda: app.test_client().get("/jwks.json").get_json()))
    with pytest.raises(InvalidToken):
        other.verify(token)  # narrowed to the requested resource
    full = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=("xsn-licenses", secret)).get_json()
    assert set(decode(app, full["access_token"])["aud"]) == {"xsn:seal", "xsn:messaging", "xsn:payment"}
    bad_target = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials",
                                                              "resource": "xsn:identity"},
                                        auth=("xsn-licenses", secret))
    assert bad_target.status_code == 400 and bad_target.get_json()["error"] == "invalid_target"
    bad_scope = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials",
                                                             "scope": "identity:admin"},
                                       auth=("xsn-licenses", secret))
    assert bad_scope.get_json()["error"] == "invalid_scope"
