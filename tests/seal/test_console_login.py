"""common.web.console_login on the seal consoles, against a real identity node served over HTTP.

The browser is played by :class:`GatewayBrowser` (tests/seal/conftest.py): identity's pages
over HTTP, the seal app behind the gateway's forwarding headers.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select, update

from common.db import get_db
from common.web.console_login.models import open_token, seal_tokens
from common.web.console_login.views import tokens_cipher
from seal.console_models import ConsoleLogin, ConsoleSession
from tests.support.console import GATEWAY, WANG, ZHANG


def _rows(app, model):
    with get_db(app).session() as session:
        return list(session.scalars(select(model)))


def _issued(monkeypatch) -> list[dict]:
    """The token responses identity gives the consoles from now on."""
    from common.web import console_login

    real, issued = console_login.flow.exchange, []

    def exchange(*args):
        issued.append(real(*args))
        return issued[-1]

    monkeypatch.setattr(console_login.flow, "exchange", exchange)
    return issued


def _store_plaintext(app) -> None:
    """Every session row as the consoles wrote it before the tokens were encrypted."""
    cipher = tokens_cipher(app)
    with get_db(app).session() as session:
        for row in session.scalars(select(ConsoleSession)):
            row.access_token = open_token(cipher, row, "access_token")
            row.id_token = open_token(cipher, row, "id_token")
        session.commit()


def test_staff_signs_in_with_identity_and_the_cookie_holds_no_token(gateway_browser, console_app, monkeypatch):
    issued = _issued(monkeypatch)
    browser = gateway_browser()
    status, page = browser.sign_in("/manage", WANG)
    assert status == 200 and "印章管理" in page and "已登录： 王五" in page  # the consoles' one wording
    assert browser.url == f"{GATEWAY}/seal/manage"
    authorize = next(u for u in browser.visited if "/oauth/authorize" in u)
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert params["code_challenge_method"] == "S256" and params["client_id"] == "xsn-seal-console"
    assert params["redirect_uri"] == f"{GATEWAY}/seal/manage/callback"
    assert params["scope"] == "openid profile seal:admin"
    assert params["state"] and params["nonce"] and params["state"] != params["nonce"]
    cookie = browser.client.get_cookie("xsn_seal_session")
    assert cookie is not None and len(cookie.value) < 400
    # No token in what the cookie holds (a JWT's base64 starts "eyJ"; the cookie's own base64,
    # compressed and signed, may contain those letters by chance, so its decoded content is read).
    held = console_app.session_interface.get_signing_serializer(console_app).loads(cookie.value)
    assert "eyJ" not in str(held)
    [row] = _rows(console_app, ConsoleSession)
    assert row.name == "王五" and row.console == "seal_manage_login"
    # The database holds neither token, nor any part of one (a JWT's claims are its middle part).
    [tokens] = issued
    stored = " ".join(str(value) for value in vars(row).values())
    for token in (tokens["access_token"], tokens["id_token"]):
        assert not any(part in stored for part in token.split("."))
    with console_app.app_context():
        assert open_token(tokens_cipher(), row, "access_token") == tokens["access_token"]
        assert open_token(tokens_cipher(), row, "id_token") == tokens["id_token"]
    assert _rows(console_app, ConsoleLogin) == []  # the flow in progress was used up
    assert browser.go(f"{GATEWAY}/seal/manage")[0] == 200  # no second trip to identity
    assert browser.visited[-1] == f"{GATEWAY}/seal/manage"


def test_sign_in_returns_to_the_page_asked_for_and_refuses_open_redirects(gateway_browser):
    browser = gateway_browser()
    status, page = browser.sign_in("/manage?status=revoked&lang=en", WANG)
    assert status == 200 and browser.url == f"{GATEWAY}/seal/manage?status=revoked&lang=en"
    assert "Electronic seal management" in page
    other = gateway_browser()
    other.go(f"{GATEWAY}/seal/manage/login?next=//evil.example/x")
    status, page = other.go(other.url, "POST", {"csrf_token": other.csrf(other.page()), "login": WANG,
                                               "password": "demo-password-1"})
    assert status == 200 and other.url == f"{GATEWAY}/seal/manage"


def test_a_person_without_the_role_gets_a_403_page_not_a_loop(gateway_browser):
    browser = gateway_browser()
    status, page = browser.sign_in("/manage", ZHANG)
    assert status == 403 and "没有权限" in page and "seal:admin" in page and "张三" in page
    assert 'action="/seal/manage/logout"' in page
    assert browser.go(f"{GATEWAY}/seal/manage?lang=en")[0] == 403
    assert "No permission" in browser.page()
    assert browser.go(f"{GATEWAY}/seal/audit/")[0] == 403  # not an auditor either


def test_auditors_sign_in_separately_with_a_token_of_their_own(gateway_browser, console_app):
    browser = gateway_browser()
    browser.sign_in("/manage", WANG)
    status, page = browser.go(f"{GATEWAY}/seal/audit/")  # identity's login still lasts: no password asked
    assert status == 200 and "签章日志审计控制台" in page and "已登录： 王五" in page
    assert "Signed in as 王五" in browser.go(f"{GATEWAY}/seal/audit/?lang=en")[1]
    assert not any("/login?" in u for u in browser.visited[-6:] if u.startswith(browser.identity_url))
    from common.web.auth import get_verifier

    with console_app.app_context():
        scopes = {row.console: get_verifier().verify(open_token(tokens_cipher(), row, "access_token"))["scope"].split()
                  for row in _rows(console_app, ConsoleSession)}
    assert "audit:read" in scopes["seal_audit_login"] and "seal:admin" not in scopes["seal_audit_login"]
    assert "seal:admin" in scopes["seal_manage_login"] and "audit:read" not in scopes["seal_manage_login"]


def test_state_is_single_use_and_bound_to_the_browser(gateway_browser):
    browser = gateway_browser()
    browser.sign_in("/manage", WANG)
    callback = next(u for u in browser.visited if "/manage/callback?" in u)
    status, page = browser.go(callback)  # replayed
    assert status == 400 and "登录请求已失效" in page
    stranger = gateway_browser()  # a callback this browser never started (login CSRF)
    assert stranger.go(callback)[0] == 400
    assert stranger.go(f"{GATEWAY}/seal/manage/callback?state=x&code=y")[0] == 400


def test_a_denied_authorization_is_explained(gateway_browser):
    browser = gateway_browser()
    _, location, _ = browser.request("GET", f"{GATEWAY}/seal/manage/login")
    state = parse_qs(urlsplit(location).query)["state"][0]
    status, page = browser.go(f"{GATEWAY}/seal/manage/callback?state={state}&error=access_denied")
    assert status == 400 and "access_denied" in page


def test_id_token_nonce_and_audience_are_checked(gateway_browser, console_app, monkeypatch):
    browser = gateway_browser()
    browser.go(f"{GATEWAY}/seal/manage")
    with get_db(console_app).session() as session:
        session.execute(update(ConsoleLogin).values(nonce="another-nonce"))
        session.commit()
    status, page = browser.go(browser.url, "POST", {"csrf_token": browser.csrf(browser.page()), "login": WANG,
                                                   "password": "demo-password-1"})
    assert status == 502 and "未通过校验" in page
    assert _rows(console_app, ConsoleSession) == []

    from common.web import console_login

    real = console_login.flow.exchange

    def access_token_as_id_token(*args):
        body = real(*args)
        return {**body, "id_token": body["access_token"]}  # aud is xsn:seal, not the client

    monkeypatch.setattr(console_login.flow, "exchange", access_token_as_id_token)
    status, page = gateway_browser().sign_in("/manage", WANG)
    assert status == 502 and _rows(console_app, ConsoleSession) == []


def test_a_token_that_no_longer_verifies_means_signing_in_again(gateway_browser, console_app):
    browser = gateway_browser()
    browser.sign_in("/manage", WANG)
    cipher = tokens_cipher(console_app)
    with get_db(console_app).session() as session:
        row = session.scalars(select(ConsoleSession)).one()
        token = open_token(cipher, row, "access_token")
        altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")  # still opens, fails to verify
        row.access_token = seal_tokens(cipher, row.handle_hash, access_token=altered, id_token="")["access_token"]
        session.commit()
    status, location, _ = browser.request("GET", f"{GATEWAY}/seal/manage/seals/x")
    assert status == 302 and location.startswith("/seal/manage/login?next=")
    assert _rows(console_app, ConsoleSession) == []
    assert browser.go(location)[0] in (200, 404)  # back through identity (still logged in there)
    assert browser.url == f"{GATEWAY}/seal/manage/seals/x"


def test_a_session_stored_before_its_tokens_were_encrypted_means_signing_in_again(gateway_browser, console_app):
    browser = gateway_browser()
    browser.sign_in("/manage", WANG)
    _store_plaintext(console_app)
    status, location, _ = browser.request("GET", f"{GATEWAY}/seal/manage/seals/x")
    assert status == 302 and location.startswith("/seal/manage/login?next=")  # not a 500, not signed in
    assert _rows(console_app, ConsoleSession) == []
    assert browser.go(location)[0] in (200, 404)  # back through identity (still logged in there)
    assert browser.url == f"{GATEWAY}/seal/manage/seals/x"
    assert len(_rows(console_app, ConsoleSession)) == 1

    _, page = browser.go(f"{GATEWAY}/seal/manage")
    _store_plaintext(console_app)  # no id_token_hint to give identity: the console's sign-out still ends
    status, location, _ = browser.request("POST", f"{GATEWAY}/seal/manage/logout", {"csrf_token": browser.csrf(page)})
    assert status == 302 and location == "/seal/manage/signed-out"
    assert _rows(console_app, ConsoleSession) == []


def test_a_sessions_tokens_do_not_open_in_another_row_or_under_another_services_key(gateway_browser, console_app):
    from common.crypto.keystore import load_kek
    from common.web.console_login.models import token_cipher

    wang, zhang = gateway_browser(), gateway_browser()
    wang.sign_in("/manage", WANG)
    zhang.sign_in("/manage", ZHANG)  # signed in, without seal:admin
    with get_db(console_app).session() as session:
        admin, citizen = sorted(session.scalars(select(ConsoleSession)), key=lambda row: row.name != "王五")
        assert admin.name == "王五" and citizen.name == "张三"
        assert open_token(token_cipher(load_kek(console_app.config), "gateway"), admin, "access_token") is None
        citizen.access_token, citizen.id_token = admin.access_token, admin.id_token  # the reader's own row
        session.commit()
    status, location, _ = zhang.request("GET", f"{GATEWAY}/seal/manage")
    assert status == 302 and location.startswith("/seal/manage/login?next=")  # not signed in as 王五
    assert wang.go(f"{GATEWAY}/seal/manage")[0] == 200


def test_sign_out_ends_the_console_and_identity_login(gateway_browser, console_app):
    browser = gateway_browser()
    _, page = browser.sign_in("/manage", WANG)
    browser.go(f"{GATEWAY}/seal/audit/")
    assert browser.request("POST", f"{GATEWAY}/seal/manage/logout")[0] == 400  # CSRF
    status, location, _ = browser.request("POST", f"{GATEWAY}/seal/manage/logout", {"csrf_token": browser.csrf(page)})
    assert status == 302 and location.startswith(f"{GATEWAY}/identity/oauth/logout?")
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == [f"{GATEWAY}/seal/manage/signed-out"] and query["id_token_hint"]
    status, page = browser.go(location)
    assert status == 200 and browser.url == f"{GATEWAY}/seal/manage/signed-out" and "您已退出" in page
    assert _rows(console_app, ConsoleSession) == []  # both consoles of this browser
    status, page = browser.go(f"{GATEWAY}/seal/audit/")
    assert status == 200 and 'name="password"' in page  # identity asks for the password again


def test_login_by_post_needs_the_csrf_token(gateway_browser):
    browser = gateway_browser()
    assert browser.request("POST", f"{GATEWAY}/seal/manage/login")[0] == 400
    _, page = browser.go(f"{GATEWAY}/seal/manage/signed-out")
    status, location, _ = browser.request("POST", f"{GATEWAY}/seal/manage/login", {"csrf_token": browser.csrf(page)})
    assert status == 302 and location.startswith(f"{GATEWAY}/identity/oauth/authorize?")


def test_identity_unreachable_or_no_client_secret_is_a_clear_page(make_app, identity, gateway_browser, tmp_path):
    from tests.support.suite import free_port

    dead = make_app("seal", PUBLIC_BASE_URL=GATEWAY, IDENTITY_URL=f"http://127.0.0.1:{free_port()}")
    response = dead.test_client().get("/manage/login", headers={"X-Forwarded-Prefix": "/seal"})
    assert response.status_code == 503 and "统一身份认证暂时无法访问" in response.get_data(as_text=True)

    (tmp_path / "var" / "clients.json").write_text("{}")  # no secret for the console client
    status, page = gateway_browser().sign_in("/manage", WANG)
    assert status == 503 and "无法从统一身份认证取得令牌" in page
