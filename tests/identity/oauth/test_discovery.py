"""Discovery, JWKS and the identity cookie."""

from __future__ import annotations

import pytest

from tests.support.oauth import (
    ISSUER,
    LI,
    Browser,
)


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


def test_discovery_and_jwks(app):
    doc = app.test_client().get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == ISSUER
    assert doc["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert doc["jwks_uri"] == f"{ISSUER}/jwks.json"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    keys = app.test_client().get("/jwks.json").get_json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256"}
    assert all("d" not in k and "p" not in k for k in keys)  # public parts only


def test_session_cookie_is_identity_s_own(app):
    """Behind the gateway all services share a host: identity's login cookie has its own name
    (common's per-service default), so another service's session cannot overwrite it."""
    assert app.config["SESSION_COOKIE_NAME"] == "xsn_identity_session"
    browser = Browser(app)
    response = browser.login(LI)
    assert any(h.startswith("xsn_identity_session=") for h in response.headers.getlist("Set-Cookie"))
