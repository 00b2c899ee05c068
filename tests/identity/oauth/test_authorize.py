"""The authorization endpoint: consent, prompt, max_age, acr, staff scopes (identity.oauth.authorize)."""

from __future__ import annotations

import pytest

from tests.support.oauth import (
    ISSUER,
    LI,
    REDIRECT,
    WANG,
    Browser,
    decode,
    exchange,
    pkce_pair,
    query,
    register,
)


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER=ISSUER)


def _sub_of(app, browser) -> str:
    from identity.models import LoginSession
    from identity.oauth.login import COOKIE_KEY

    with browser.client.session_transaction() as flask_session:
        sid = flask_session[COOKIE_KEY]
    from common.db import get_db

    with app.app_context(), get_db(app).session() as session:
        return session.get(LoginSession, sid).person_id


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
