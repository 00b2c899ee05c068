"""Interoperability: requests-oauthlib drives the provider over HTTP; PyJWT verifies its tokens
from the discovery document and JWKS alone."""

from __future__ import annotations

import jwt as pyjwt
import pytest
import requests
from requests_oauthlib import OAuth2Session

from tests.support.oauth import CSRF_RE, REDIRECT, register


@pytest.fixture
def provider(seeded_identity_app, serve_app, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback only
    app = seeded_identity_app(PROXY_HOPS=0)
    url = serve_app(app)
    app.config["OAUTH_ISSUER"] = url
    return app, url


def browser_login_and_authorize(authorization_url: str, base: str) -> str:
    """What the user's browser does: log in with the form, come back, land on the callback."""
    http = requests.Session()
    response = http.get(authorization_url, allow_redirects=False, timeout=10)
    login_url = base + response.headers["Location"]
    token = CSRF_RE.search(http.get(login_url, timeout=10).text).group(1)
    response = http.post(login_url, data={"csrf_token": token, "login": "13900005678",
                                          "password": "demo-password-1"}, allow_redirects=False, timeout=10)
    response = http.get(base + response.headers["Location"], allow_redirects=False, timeout=10)
    assert response.status_code == 302 and response.headers["Location"].startswith(REDIRECT)
    return response.headers["Location"]


def test_requests_oauthlib_code_flow_and_pyjwt_verification(provider):
    app, base = provider
    client_id, _ = register(app, client_type="public", skip_consent=True, audiences=["xsn:licenses"])
    discovery = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()

    oauth = OAuth2Session(client_id, redirect_uri=REDIRECT, scope=["openid", "profile", "offline_access"],
                          pkce="S256")
    authorization_url, state = oauth.authorization_url(discovery["authorization_endpoint"], nonce="n-123")
    callback = browser_login_and_authorize(authorization_url, base)
    token = oauth.fetch_token(discovery["token_endpoint"], authorization_response=callback, include_client_id=True)
    assert token["token_type"] == "Bearer" and "refresh_token" in token

    keys = pyjwt.PyJWKClient(discovery["jwks_uri"])
    id_claims = pyjwt.decode(token["id_token"], keys.get_signing_key_from_jwt(token["id_token"]).key,
                             algorithms=discovery["id_token_signing_alg_values_supported"], audience=client_id,
                             issuer=discovery["issuer"])
    assert id_claims["nonce"] == "n-123" and id_claims["name"] == "李四"
    access = token["access_token"]
    assert pyjwt.get_unverified_header(access)["typ"] == "at+jwt"
    access_claims = pyjwt.decode(access, keys.get_signing_key_from_jwt(access).key, algorithms=["ES256"],
                                 audience="xsn:licenses", issuer=discovery["issuer"])
    assert access_claims["sub"] == id_claims["sub"] and access_claims["client_id"] == client_id

    userinfo = oauth.get(discovery["userinfo_endpoint"], timeout=10)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == id_claims["sub"]

    refreshed = oauth.refresh_token(discovery["token_endpoint"], client_id=client_id)
    assert refreshed["refresh_token"] != token["refresh_token"]
    pyjwt.decode(refreshed["access_token"], keys.get_signing_key_from_jwt(refreshed["access_token"]).key,
                 algorithms=["ES256"], audience="xsn:licenses", issuer=discovery["issuer"])


def test_requests_oauthlib_client_credentials(provider):
    from oauthlib.oauth2 import BackendApplicationClient

    app, base = provider
    client_id, secret = register(app, grant_types=["client_credentials"], scopes=["seal:sign"],
                                 audiences=["xsn:seal"], redirect_uris=[])
    discovery = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    oauth = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = oauth.fetch_token(discovery["token_endpoint"], client_id=client_id, client_secret=secret)
    key = pyjwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(token["access_token"]).key
    claims = pyjwt.decode(token["access_token"], key, algorithms=["ES256"], audience="xsn:seal",
                          issuer=discovery["issuer"])
    assert claims["sub"] == client_id and claims["scope"] == "seal:sign"
