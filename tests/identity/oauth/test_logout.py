"""RP-initiated logout (identity.oauth.logout)."""

from __future__ import annotations

import pytest
from joserfc import jwt

from tests.support.oauth import (
    ISSUER,
    LI,
    Browser,
    exchange,
    jwks_of,
    pkce_pair,
    refresh,
    register,
)


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


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
