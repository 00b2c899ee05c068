"""Bad input and attacks on the OAuth endpoints: each one refused."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.oauth import REDIRECT, Browser, pkce_pair, query, register

LI = "13900005678"


@pytest.fixture
def app(seeded_identity_app):
    return seeded_identity_app(OAUTH_ISSUER="https://gov.example/identity", OAUTH_TOKEN_FAILURE_LIMIT="5/minute")


@pytest.fixture
def public(app):
    return register(app, client_type="public", skip_consent=True)[0]


@pytest.fixture
def browser(app):
    browser = Browser(app)
    browser.login(LI)
    return browser


def token(app, **data):
    return app.test_client().post("/oauth/token", data=data)


def code_exchange(app, client_id, code, **extra):
    return token(app, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_id=client_id, **extra)


def test_wrong_or_missing_pkce_verifier(app, public, browser):
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge)
    wrong = code_exchange(app, public, code, code_verifier=pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    code, _ = browser.code(public, challenge)
    missing = code_exchange(app, public, code)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"
    assert code_exchange(app, public, code, code_verifier=verifier).status_code == 200


def test_plain_code_challenge_method_refused(app, public, browser):
    verifier, _ = pkce_pair()
    for method in ("plain", None):  # absent method means plain (RFC 7636 §4.3): refused as well
        url = browser.authorize_url(public, challenge=None, code_challenge=verifier, state="x")
        if method:
            url += f"&code_challenge_method={method}"
        response = browser.client.get(url)
        got = query(response.headers["Location"])
        assert got["error"] == "invalid_request" and "code" not in got


def test_public_client_must_use_pkce(app, public, browser):
    response = browser.client.get(browser.authorize_url(public, challenge=None))
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_reused_code_fails_and_revokes_what_the_first_use_issued(app, public, browser):
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge, scope="openid profile offline_access")
    first = code_exchange(app, public, code, code_verifier=verifier).get_json()
    second = code_exchange(app, public, code, code_verifier=verifier)
    assert second.status_code == 400 and second.get_json()["error"] == "invalid_grant"
    http = app.test_client()
    userinfo = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert userinfo.status_code == 401
    refreshed = token(app, grant_type="refresh_token", client_id=public, refresh_token=first["refresh_token"])
    assert refreshed.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:8765/callback/",        # trailing slash
    "http://127.0.0.1:8765/callback?x=1",     # extra query
    "http://127.0.0.1:8765/callbackx",        # prefix match
    "http://127.0.0.1:8765/callback#frag",
    "HTTP://127.0.0.1:8765/callback",          # case
    "https://evil.example/callback",           # open redirect
    "http://127.0.0.1:8765@evil.example/callback",
    "//evil.example/callback",
    "javascript:alert(1)",
])
def test_redirect_uri_must_match_exactly_and_never_redirects_elsewhere(app, public, browser, redirect_uri):
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url(public, challenge=challenge, redirect_uri=redirect_uri))
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.get_json()["error"] == "invalid_request"


def test_unknown_client_is_not_redirected(app, browser):
    _, challenge = pkce_pair()
    response = browser.client.get(browser.authorize_url("no-such-client", challenge=challenge))
    assert response.status_code == 400 and "Location" not in response.headers


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize("case", ["unknown client", "unregistered redirect_uri", "missing redirect_uri"])
def test_unredirectable_errors_are_a_page_for_browsers_and_json_otherwise(app, public, browser, case):
    _, challenge = pkce_pair()
    evil = "https://evil.example/callback"
    url = {"unknown client": browser.authorize_url("no-such-client", challenge=challenge),
           "unregistered redirect_uri": browser.authorize_url(public, challenge=challenge, redirect_uri=evil),
           "missing redirect_uri": browser.authorize_url(public, challenge=challenge).replace("redirect_uri=", "x=")
           }[case]
    expected = {"unknown client": ("未在西安统一身份认证平台登记", "not registered with"),
                "unregistered redirect_uri": ("回调地址未经登记", "return address that is not registered"),
                "missing redirect_uri": ("请求无效", "invalid request")}[case]

    page = browser.client.get(url, headers={"Accept": BROWSER_ACCEPT})
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and page.mimetype == "text/html" and "Location" not in page.headers
    assert "无法继续登录" in html and expected[0] in html
    main = html[html.index("<main"):html.index("</main>")]
    assert "evil.example" not in main and 'href="https://evil' not in html  # no link to, or word of, the target
    english = browser.client.get(url + "&lang=en", headers={"Accept": BROWSER_ACCEPT})
    assert english.status_code == 400 and expected[1] in english.get_data(as_text=True)

    for accept in (None, "application/json", "*/*", "application/json, text/html;q=0.5"):
        response = browser.client.get(url, headers={"Accept": accept} if accept else {})
        assert response.status_code == 400 and response.mimetype == "application/json", accept
        assert response.get_json()["error"] in ("invalid_client", "invalid_request")


def test_token_redirect_uri_must_match_the_authorization_request(app, public, browser):
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge)
    response = token(app, grant_type="authorization_code", code=code, redirect_uri="http://localhost:8765/callback",
                     client_id=public, code_verifier=verifier)
    assert response.get_json()["error"] == "invalid_grant"


def test_state_is_echoed_exactly_and_nonce_bound_to_the_id_token(app, public, browser):
    verifier, challenge = pkce_pair()
    odd_state = "a b&c=d/é"
    code, callback = browser.code(public, challenge, state=odd_state, nonce="nonce-1")
    assert callback["state"] == odd_state
    body = code_exchange(app, public, code, code_verifier=verifier).get_json()
    keys = KeySet.import_key_set(app.test_client().get("/jwks.json").get_json())
    assert jwt.decode(body["id_token"], keys).claims["nonce"] == "nonce-1"
    code, _ = browser.code(public, challenge, nonce="nonce-2")
    body = code_exchange(app, public, code, code_verifier=verifier).get_json()
    assert jwt.decode(body["id_token"], keys).claims["nonce"] == "nonce-2"


def test_nonce_reused_by_the_same_client_is_refused(app, public, browser):
    """A second authorization request with a nonce already bound to a code of the client is a replay."""
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge, nonce="once-only")
    response = browser.client.get(browser.authorize_url(public, challenge=challenge, nonce="once-only",
                                                        state="replayed"))
    assert response.status_code == 302
    got = query(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert got["error"] == "invalid_request" and got["state"] == "replayed" and "code" not in got
    # The first code is unaffected; another client may use the same value; a fresh nonce works.
    assert "id_token" in code_exchange(app, public, code, code_verifier=verifier).get_json()
    other = register(app, client_type="public", skip_consent=True)[0]
    browser.code(other, challenge, nonce="once-only")
    browser.code(public, challenge, nonce="another-one")


def test_code_of_one_client_cannot_be_redeemed_by_another(app, public, browser):
    other = register(app, client_type="public", skip_consent=True)[0]
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge)
    assert code_exchange(app, other, code, code_verifier=verifier).get_json()["error"] == "invalid_grant"


def test_client_authentication_with_the_wrong_method(app, browser):
    client_id, secret = register(app, skip_consent=True)  # client_secret_basic
    verifier, challenge = pkce_pair()
    code, _ = browser.code(client_id, challenge)
    as_post = token(app, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier,
                    client_id=client_id, client_secret=secret)
    assert as_post.get_json()["error"] == "invalid_client"
    as_public = code_exchange(app, client_id, code, code_verifier=verifier)  # no secret at all
    assert as_public.get_json()["error"] == "invalid_client"
    wrong = app.test_client().post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT, "code_verifier": verifier},
                                   auth=(client_id, secret + "x"))
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    right = app.test_client().post("/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT, "code_verifier": verifier},
                                   auth=(client_id, secret))
    assert right.status_code == 200


def test_public_client_cannot_use_client_credentials(app, public):
    response = token(app, grant_type="client_credentials", client_id=public)
    assert response.get_json()["error"] in ("invalid_client", "unauthorized_client")


def test_scope_escalation_at_refresh_refused(app, public, browser):
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge, scope="openid profile")
    body = code_exchange(app, public, code, code_verifier=verifier).get_json()
    response = token(app, grant_type="refresh_token", client_id=public, refresh_token=body["refresh_token"],
                     scope="openid profile idcard")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"
    narrower = token(app, grant_type="refresh_token", client_id=public, refresh_token=body["refresh_token"],
                     scope="openid")
    assert narrower.status_code == 200 and narrower.get_json()["scope"] == "openid"


def test_refresh_token_reuse_revokes_the_whole_family(app, public, browser):
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge)
    first = code_exchange(app, public, code, code_verifier=verifier).get_json()
    second = token(app, grant_type="refresh_token", client_id=public, refresh_token=first["refresh_token"]).get_json()
    replay = token(app, grant_type="refresh_token", client_id=public, refresh_token=first["refresh_token"])
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    # The legitimate-looking newest token of the family is dead too, and so is its access token.
    dead = token(app, grant_type="refresh_token", client_id=public, refresh_token=second["refresh_token"])
    assert dead.get_json()["error"] == "invalid_grant"
    userinfo = app.test_client().get("/oauth/userinfo", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert userinfo.status_code == 401


def test_refresh_token_bound_to_its_client(app, public, browser):
    other = register(app, client_type="public", skip_consent=True)[0]
    verifier, challenge = pkce_pair()
    code, _ = browser.code(public, challenge)
    body = code_exchange(app, public, code, code_verifier=verifier).get_json()
    assert token(app, grant_type="refresh_token", client_id=other,
                 refresh_token=body["refresh_token"]).get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("data, error", [
    ({}, "unsupported_grant_type"),
    ({"grant_type": "password", "username": "x", "password": "y"}, "unsupported_grant_type"),
    ({"grant_type": "authorization_code", "client_id": "xian-demo-app"}, "invalid_request"),
    ({"grant_type": "refresh_token", "client_id": "xian-demo-app"}, "invalid_request"),
    ({"grant_type": "client_credentials"}, "invalid_client"),
])
def test_malformed_token_requests_answer_in_oauth_format(app, data, error):
    response = app.test_client().post("/oauth/token", data=data)
    assert response.status_code in (400, 401)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error and set(body) <= {"error", "error_description", "error_uri", "state"}


def test_non_oauth_endpoints_answer_problem_json(app):
    response = app.test_client().get("/admin/clients/")
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert response.get_json()["code"] in ("invalid_token", "token_missing")
    assert app.test_client().get("/oauth/token").mimetype == "application/problem+json"  # 405


def test_brute_force_on_the_token_endpoint_is_rate_limited(app):
    http = app.test_client()
    statuses = [http.post("/oauth/token", data={"grant_type": "client_credentials"},
                          auth=("xsn-licenses", f"guess-{i}")).status_code for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    blocked = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("xsn-licenses", "guess"))
    assert blocked.get_json()["error"] == "invalid_request" and "Retry-After" in blocked.headers


def test_disabled_client_gets_nothing(app):
    from common.db import get_db
    from identity.oauth.clients import disable_client
    from identity.oauth.seed import demo_secret

    with app.app_context(), get_db(app).session() as session:
        disable_client(session, "xsn-seal")
        session.commit()
        from common.crypto.keystore import load_kek

        secret = demo_secret(load_kek(app.config), "xsn-seal")
    response = app.test_client().post("/oauth/token", data={"grant_type": "client_credentials"},
                                      auth=("xsn-seal", secret))
    assert response.get_json()["error"] == "invalid_client"
