"""The OAuth 2.0 / OIDC provider: code + PKCE, tokens, userinfo, refresh, consent, prompts, logout."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from common.web.auth import InvalidToken, JWKSCache, TokenVerifier
from tests.support.oauth import REDIRECT, Browser, pkce_pair, query, register

ISSUER = "https://gov.example/identity"
ZHANG, LI, WANG = "13800001234", "13900005678", "13700009012"  # L1 citizen, L2 citizen, L3 staff


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


def jwks_of(app) -> KeySet:
    return KeySet.import_key_set(app.test_client().get("/jwks.json").get_json())


def decode(app, token: str) -> dict:
    return jwt.decode(token, jwks_of(app)).claims


def exchange(app, client_id, code, verifier, secret=None, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
            **extra}
    if secret is None:
        data["client_id"] = client_id
        return app.test_client().post("/oauth/token", data=data)
    return app.test_client().post("/oauth/token", data=data, auth=(client_id, secret))


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


def test_logout_refuses_unregistered_post_logout_redirect(app):
    client_id, _ = register(app, client_type="public")
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge)
    id_token = exchange(app, client_id, code, verifier).get_json()["id_token"]
    for target in ("https://evil.example/", "http://127.0.0.1:8765/x", "http://127.0.0.1:8765"):
        response = browser.client.get("/oauth/logout", query_string={"id_token_hint": id_token,
                                                                     "post_logout_redirect_uri": target})
        assert response.status_code == 400 and "Location" not in response.headers


def test_logout_refuses_an_id_token_hint_not_issued_here(app):
    from joserfc.jwk import ECKey

    client_id, _ = register(app, client_type="public")
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge)
    genuine = exchange(app, client_id, code, verifier).get_json()["id_token"]
    ours = jwt.decode(genuine, jwks_of(app))
    # Our kid and our claims, signed by somebody else's key.
    forged = jwt.encode(ours.header, ours.claims, ECKey.generate_key("P-256"), algorithms=["ES256"])
    for hint in ("garbage", "a.b.c", forged):
        response = browser.client.get("/oauth/logout", query_string={"id_token_hint": hint})
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_request", hint
    assert browser.client.get("/account").status_code == 200  # still signed in


def test_consent_is_remembered_forced_by_prompt_and_revocable(app):
    from common.db import get_db
    from identity.oauth.consents import list_consents, revoke_consent

    client_id, _ = register(app, client_type="public")
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    url = browser.authorize_url(client_id, challenge=challenge, scope="openid profile")
    page = browser.client.get(url)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "测试应用" in text and "您的姓名" in text
    assert browser.client.get(url + "&lang=en").get_data(as_text=True).count("Your name") == 1
    assert browser.consent(url).status_code == 302
    assert browser.client.get(url).status_code == 302  # remembered
    assert browser.client.get(url + "&prompt=consent").status_code == 200  # forced
    wider = browser.authorize_url(client_id, challenge=challenge, scope="openid profile phone")
    assert browser.client.get(wider).status_code == 200  # a wider set asks again
    denied = browser.consent(wider, decision="deny")
    assert query(denied.headers["Location"])["error"] == "access_denied"

    code, _ = browser.code(client_id, challenge, scope="openid profile")
    refresh = exchange(app, client_id, code, verifier).get_json()["refresh_token"]
    with app.app_context(), get_db(app).session() as session:
        person_id = list_consents(session, _sub_of(app, browser))[0].client_id and _sub_of(app, browser)
        assert [c.client_id for c in list_consents(session, person_id)] == [client_id]
        assert revoke_consent(session, person_id, client_id)
        assert list_consents(session, person_id) == []
    assert browser.client.get(url).status_code == 200  # asks again
    response = app.test_client().post("/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                            "refresh_token": refresh})
    assert response.get_json()["error"] == "invalid_grant"


def _sub_of(app, browser) -> str:
    from identity.login import COOKIE_KEY
    from identity.models import LoginSession

    with browser.client.session_transaction() as flask_session:
        sid = flask_session[COOKIE_KEY]
    from common.db import get_db

    with app.app_context(), get_db(app).session() as session:
        return session.get(LoginSession, sid).person_id


def test_prompt_none_without_session_is_login_required(app):
    client_id, _ = register(app, client_type="public")
    browser = Browser(app)
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url(client_id, challenge=challenge, prompt="none", state="s1"))
    assert response.status_code == 302
    got = query(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert got["error"] == "login_required" and got["state"] == "s1" and "code" not in got


def test_prompt_none_without_consent_is_consent_required(app):
    client_id, _ = register(app, client_type="public")
    browser = Browser(app)
    browser.login(LI)
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url(client_id, challenge=challenge, prompt="none"))
    assert query(response.headers["Location"])["error"] == "consent_required"


def test_no_session_redirects_to_login_with_hint(app):
    client_id, _ = register(app, client_type="public")
    browser = Browser(app)
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url(client_id, challenge=challenge, login_hint=LI))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?") and query(location)["login_hint"] == LI
    assert query(location)["next"].startswith("/oauth/authorize?")


@pytest.mark.parametrize("extra", [{"prompt": "login"}, {"max_age": "0"}])
def test_prompt_login_and_max_age_force_a_fresh_login(app, extra):
    client_id, _ = register(app, client_type="public", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url(client_id, challenge=challenge, **extra))
    location = response.headers["Location"]
    assert location.startswith("/login?") and query(location).get("prompt") == "login"
    # Logging in again returns to the authorize request, which now issues a code (no loop).
    next_url = query(location)["next"]
    token = browser.csrf(location)
    relogin = browser.client.post("/login", data={"csrf_token": token, "login": LI, "password": "demo-password-1",
                                                  "next": next_url})
    assert relogin.headers["Location"] == next_url
    done = browser.client.get(next_url)
    assert "code" in query(done.headers["Location"]), done.headers["Location"]


def test_max_age_satisfied_by_a_recent_login(app):
    client_id, _ = register(app, client_type="public", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url(client_id, challenge=challenge, max_age="3600"))
    assert "code" in query(response.headers["Location"])


def test_acr_values_above_the_person_level_step_up_or_error(app):
    client_id, _ = register(app, client_type="public", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)  # L2
    verifier, challenge = pkce_pair()
    step_up = browser.client.get(browser.authorize_url(client_id, challenge=challenge, acr_values="urn:xsn:acr:L3"))
    assert step_up.headers["Location"].startswith("/login?") and query(step_up.headers["Location"])["acr"] == "3"
    refused = browser.client.get(browser.authorize_url(client_id, challenge=challenge, acr_values="urn:xsn:acr:L3",
                                                       prompt="none"))
    assert query(refused.headers["Location"])["error"] == "unmet_authentication_requirements"
    code, _ = browser.code(client_id, challenge, acr_values="urn:xsn:acr:L2")
    assert decode(app, exchange(app, client_id, code, verifier).get_json()["id_token"])["acr"] == "urn:xsn:acr:L2"


def test_client_minimum_level_applies_without_acr_values(app):
    client_id, _ = register(app, client_type="public", skip_consent=True, min_acr=3)
    low, high = Browser(app), Browser(app)
    low.login(LI)
    high.login(WANG)
    _, challenge = pkce_pair()
    assert query(low.client.get(low.authorize_url(client_id, challenge=challenge)).headers["Location"])["acr"] == "3"
    assert "code" in query(high.client.get(high.authorize_url(client_id, challenge=challenge)).headers["Location"])


def test_staff_scopes_only_when_requested_allowed_and_held(app):
    staff_scope = "licenses:issue"
    client_id, _ = register(app, client_type="public", skip_consent=True, scopes=["openid", staff_scope, "staff"])
    other_id, _ = register(app, client_type="public", skip_consent=True, scopes=["openid", "staff"])
    verifier, challenge = pkce_pair()
    with app.app_context():
        from common.db import get_db
        from identity.models import StaffGrant

        with get_db(app).session() as session:
            held = {s for g in session.query(StaffGrant).all() for s in g.scopes.split()}
    assert staff_scope in held, held

    staff, citizen = Browser(app), Browser(app)
    staff.login(WANG)
    citizen.login(LI)
    code, _ = staff.code(client_id, challenge, scope=f"openid staff {staff_scope}")
    token = decode(app, exchange(app, client_id, code, verifier).get_json()["access_token"])
    assert staff_scope in token["scope"].split() and token["roles"]
    code, _ = citizen.code(client_id, challenge, scope=f"openid {staff_scope}")
    assert staff_scope not in decode(app, exchange(app, client_id, code, verifier).get_json()["access_token"])["scope"]
    code, _ = staff.code(other_id, challenge, scope=f"openid {staff_scope}")  # not allowed for this client
    assert staff_scope not in decode(app, exchange(app, other_id, code, verifier).get_json()["access_token"])["scope"]


def test_confidential_client_rs256_id_token(app):
    client_id, secret = register(app, id_token_alg="RS256", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, nonce="abc")
    body = exchange(app, client_id, code, verifier, secret=secret).get_json()
    token = jwt.decode(body["id_token"], jwks_of(app))
    assert token.header["alg"] == "RS256" and token.claims["nonce"] == "abc"


def refresh(app, client_id, refresh_token, secret=None, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if secret is None:
        return app.test_client().post("/oauth/token", data={**data, "client_id": client_id})
    return app.test_client().post("/oauth/token", data=data, auth=(client_id, secret))


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


def test_logout_without_id_token_hint_asks_first(app):
    from tests.support.oauth import CSRF_RE

    client_id, _ = register(app, client_type="public", skip_consent=True)
    browser = Browser(app)
    browser.login(LI)
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge, scope="openid offline_access")
    body = exchange(app, client_id, code, verifier).get_json()
    params = {"client_id": client_id, "post_logout_redirect_uri": "http://127.0.0.1:8765/", "state": "s1"}

    # A bare GET (a cross-site link or image could send it) signs nobody out: it asks.
    page = browser.client.get("/oauth/logout", query_string=params)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "退出登录" in html and "测试应用" in html
    assert 'name="confirm" value="yes"' in html and 'value="http://127.0.0.1:8765/"' in html
    assert browser.client.get("/account").status_code == 200
    english = browser.client.get("/oauth/logout", query_string={**params, "lang": "en"}).get_data(as_text=True)
    assert "Sign out" in english and "Stay signed in" in english
    token = CSRF_RE.search(html).group(1)

    # Without the form's CSRF token the POST is refused and nothing happens.
    forged = browser.client.post("/oauth/logout", data={**params, "confirm": "yes"})
    assert forged.status_code == 400 and forged.mimetype == "application/problem+json"
    # "Stay signed in" keeps the session.
    stay = browser.client.post("/oauth/logout", data={**params, "confirm": "no", "csrf_token": token})
    assert stay.status_code == 302 and "Location" in stay.headers and "8765" not in stay.headers["Location"]
    assert browser.client.get("/account").status_code == 200
    rotated = refresh(app, client_id, body["refresh_token"])
    assert rotated.status_code == 200  # the session's refresh tokens still work

    done = browser.client.post("/oauth/logout", data={**params, "confirm": "yes", "csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "http://127.0.0.1:8765/?state=s1"
    assert browser.client.get("/account").status_code == 302  # signed out
    assert refresh(app, client_id, rotated.get_json()["refresh_token"]).get_json()["error"] == "invalid_grant"
    # Nobody signed in any more: nothing to confirm.
    again = browser.client.get("/oauth/logout")
    assert again.status_code == 200 and 'name="confirm"' not in again.get_data(as_text=True)
