"""The pages through the Flask test client: login, TOTP, lockout, CSRF, redirects, registration,
sessions, password reset."""

from __future__ import annotations

import re
import secrets
from datetime import date

import pyotp
import pytest
from sqlalchemy import select

from common.values.codes import CitizenId
from identity import accounts
from identity.models import LoginSession, Notification
from identity.oauth.login import is_safe_next
from identity.seed import DEMO_PEOPLE, DEMO_RESIDENTS
from tests.support.console import CSRF_RE

CITIZEN = DEMO_PEOPLE[0]
NEW_ID = CitizenId.build("610113", date(1999, 9, 9), 77).value


def test_login_success_redirects_to_next_and_shows_masked_profile(seeded, pages):
    response = pages.login(CITIZEN["id_number"], next="/account?tab=1")
    assert response.status_code == 302 and response.headers["Location"] == "/account?tab=1"
    page = pages.client.get("/account").get_data(as_text=True)
    assert CITIZEN["name"] in page
    assert CITIZEN["id_number"] not in page and CITIZEN["mobile"] not in page
    assert CITIZEN["id_number"][:4] + "*" * 10 + CITIZEN["id_number"][-4:] in page
    assert "138****1234" in page


def test_login_by_mobile_number(seeded, pages):
    assert pages.login(CITIZEN["mobile"]).status_code == 302


def test_login_failure_is_friendly_and_in_english_on_request(seeded, pages):
    response = pages.login(CITIZEN["id_number"], "wrong-password-9")
    assert response.status_code == 401
    assert "账户或密码错误" in response.get_data(as_text=True)
    response = pages.post("/login?lang=en", {"login": CITIZEN["id_number"], "password": "nope-nope-1"})
    assert "Wrong account or password" in response.get_data(as_text=True)
    assert pages.client.get("/account").status_code == 302  # not logged in


def test_lockout_after_repeated_failures(seeded, pages):
    for _ in range(2):
        assert pages.login(CITIZEN["id_number"], "wrong-password-9").status_code == 401
    locked = pages.login(CITIZEN["id_number"], "wrong-password-9")
    assert locked.status_code == 423
    assert "账户已临时锁定" in locked.get_data(as_text=True)
    assert pages.login(CITIZEN["id_number"]).status_code == 423  # right password, still locked


def test_login_is_rate_limited_per_ip(seeded, identity_app):
    app = identity_app(LOGIN_RATE_LIMIT="3/minute")
    from identity.seed import seed

    with app.app_context():
        seed(app)
    client = app.test_client()
    net = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}"  # fresh keys, also in a shared Redis
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)
    statuses = [client.post("/login", data={"csrf_token": token, "login": f"1380000{i:04d}", "password": "x"},
                            environ_base={"REMOTE_ADDR": f"{net}.1"}).status_code for i in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
    other = client.post("/login", data={"csrf_token": token, "login": "13800000000", "password": "x"},
                        environ_base={"REMOTE_ADDR": f"{net}.2"})
    assert other.status_code == 401


def test_csrf_token_is_required(seeded, client):
    response = client.post("/login", data={"login": CITIZEN["id_number"], "password": CITIZEN["password"]})
    assert response.status_code == 400
    assert response.json["code"] == "csrf_failed"
    response = client.post("/register", data={"csrf_token": "forged", "name": "x"})
    assert response.status_code == 400 and response.json["code"] == "csrf_failed"


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)",
    "http:/evil.example", "/\r\nLocation: https://evil.example", " //evil.example", "evil.example/x",
])
def test_open_redirect_in_next_is_refused(seeded, pages, target):
    response = pages.login(CITIZEN["id_number"], next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    assert not is_safe_next(target)


def test_safe_next_accepts_local_paths():
    assert is_safe_next("/authorize?client_id=a&redirect_uri=https%3A%2F%2Fapp.example%2Fcb")
    assert is_safe_next("/identity/account")


def test_logged_in_visit_to_login_skips_the_form_unless_prompt_login(seeded, pages):
    pages.login(CITIZEN["id_number"])
    again = pages.client.get("/login?next=/authorize%3Fx%3D1")
    assert again.status_code == 302 and again.headers["Location"] == "/authorize?x=1"
    forced = pages.client.get("/login?next=/authorize&prompt=login")
    assert forced.status_code == 200 and "请重新登录" in forced.get_data(as_text=True)


def test_step_up_when_the_level_is_too_low(seeded, pages):
    response = pages.login(CITIZEN["id_number"], next="/authorize?x=1", acr="3")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "L3" in page and "L1" in page
    # The real-name check (张三 has a face-check result in the demo register) lifts them to L3.
    done = pages.post("/account/realname", {"next": "/authorize?x=1"}, token_from="/account")
    assert done.status_code == 302 and done.headers["Location"] == "/authorize?x=1"
    assert "L3" in pages.client.get("/account").get_data(as_text=True)


def test_totp_login_flow(seeded, pages, app):
    pages.login(CITIZEN["id_number"])
    enrol = pages.client.get("/account/totp").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol).group(1)
    assert "otpauth://totp/" in enrol and "<svg" in enrol
    bad = pages.post("/account/totp", {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"},
                     token_from="/account")
    assert bad.status_code == 401
    assert pages.post("/account/totp", {"code": pyotp.TOTP(secret).now()}, token_from="/account").status_code == 302
    pages.post("/logout", {}, token_from="/account")

    first = pages.login(CITIZEN["id_number"])
    assert first.headers["Location"] == "/login/otp"
    assert pages.client.get("/account").status_code == 302  # password alone is not a login
    wrong = pages.post("/login/otp", {"code": "12345x"})
    assert wrong.status_code == 401 and "动态码错误" in wrong.get_data(as_text=True)
    from freezegun import freeze_time

    from common.db import utcnow

    with freeze_time(utcnow()) as clock:
        clock.tick(31)  # the enrolment code's step is used up
        ok = pages.post("/login/otp", {"code": pyotp.TOTP(secret).now()})
        assert ok.status_code == 302
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        row = db.scalars(select(LoginSession).where(LoginSession.revoked_at.is_(None))).all()[-1]
        assert row.amr == "pwd otp"


@pytest.mark.parametrize("lang, expected", [
    ("zh", ["公民身份号码格式或校验位不正确", "手机号码格式不正确", "电子邮箱格式不正确", "两次输入的密码不一致"]),
    ("en", ["check character is wrong", "mobile number is not valid", "e-mail address is not valid",
            "The two passwords differ"]),
])
def test_registration_errors_are_shown_in_the_language(pages, app, lang, expected):
    bad_id = NEW_ID[:-1] + ("0" if NEW_ID[-1] != "0" else "1")
    response = pages.post(f"/register?lang={lang}", {"name": "新用户", "id_number": bad_id, "mobile": "12345",
                                                     "email": "not an address",
                                                     "password": "good-pass-1", "password2": "other-pass-1"},
                          token_from=f"/register?lang={lang}")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for text in expected:
        assert text in page
    assert 'value="新用户"' in page  # what was typed is kept
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        assert accounts.find_person_by_id_number(db, bad_id) is None


def test_registration_field_errors_from_the_domain(pages, app):
    response = pages.post("/register", {"name": "新用户", "id_number": NEW_ID, "mobile": "13811112222",
                                        "password": "short", "password2": "short"})
    assert response.status_code == 422 and "密码至少 8 位" in response.get_data(as_text=True)
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        assert accounts.find_person_by_id_number(db, NEW_ID) is None  # no half-written row


def test_registration_then_verification(pages, app):
    resident = DEMO_RESIDENTS[0]
    response = pages.post("/register", {"name": resident["name"], "id_number": resident["id_number"],
                                        "mobile": "13811112222", "email": "resident@example.test",
                                        "password": "good-pass-1", "password2": "good-pass-1"})
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    page = pages.client.get("/account").get_data(as_text=True)
    assert "L1" in page and "注册成功" in page
    assert "r***@example.test" in page  # the optional e-mail address, masked like the mobile
    pages.post("/account/realname", {"next": "/account"}, token_from="/account")
    assert "L2 · 已通过人口库实名核验" in pages.client.get("/account").get_data(as_text=True)
    # The same ID number cannot register twice.
    pages.post("/logout", {}, token_from="/account")
    again = pages.post("/register", {"name": resident["name"], "id_number": resident["id_number"],
                                     "mobile": "13811113333", "password": "good-pass-1", "password2": "good-pass-1"})
    assert again.status_code == 422 and "该身份证号已注册" in again.get_data(as_text=True)


def test_sessions_list_and_sign_out_everywhere(seeded, make_pages):
    laptop, phone, tablet = make_pages(), make_pages(), make_pages()
    for device in (laptop, phone, tablet):
        assert device.login(CITIZEN["id_number"]).status_code == 302
    page = laptop.client.get("/account").get_data(as_text=True)
    assert page.count('class="session-row"') == 3
    assert page.count("· 密码登录</span>") == 3 and "· pwd<" not in page  # how each signed in, in words

    response = laptop.post("/account/sessions/revoke-others", {}, token_from="/account")
    assert response.status_code == 302
    assert laptop.client.get("/account").status_code == 200
    for device in (phone, tablet):
        gone = device.client.get("/account")
        assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    assert laptop.client.get("/account").get_data(as_text=True).count('class="session-row"') == 1


def test_revoke_one_session_and_logout(seeded, make_pages, app):
    laptop, phone = make_pages(), make_pages()
    laptop.login(CITIZEN["id_number"])
    phone.login(CITIZEN["id_number"])
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        ids = [s.id for s in db.scalars(select(LoginSession).order_by(LoginSession.auth_time))]
    laptop.post(f"/account/sessions/{ids[1]}/revoke", {}, token_from="/account")
    assert phone.client.get("/account").status_code == 302
    assert laptop.client.get("/account").status_code == 200
    laptop.post("/logout", {}, token_from="/account")
    assert laptop.client.get("/account").status_code == 302


def test_password_reset_by_sms_through_the_hub(seeded, pages, app):
    hub = app.extensions["identity_notifier"]  # the in-memory notifier: what the hub was asked to send
    unknown = pages.post("/password/forgot", {"id_number": CITIZEN["id_number"], "mobile": "13999999999"})
    assert unknown.status_code == 302  # same answer whether or not the details match
    unknown.close()
    assert hub.sent == []
    answer = pages.post("/password/forgot", {"id_number": CITIZEN["id_number"], "mobile": CITIZEN["mobile"]})
    assert answer.status_code == 302
    assert hub.sent == []  # handed on once the response has gone out (a server closes it)
    answer.close()
    [sms] = hub.sent
    assert sms["template"] == "password_reset" and sms["recipients"] == [{"phone": CITIZEN["mobile"]}]
    assert sms["variables"]["minutes"] == str(app.config["PASSWORD_RESET_MINUTES"])
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        row = db.scalars(select(Notification)).one()
        # Sent: the row keeps the hub's message id, not the link or the number.
        assert (row.status, row.message_id, row.id) == ("sent", sms["message_id"], sms["idempotency_key"])
        assert row.variables == {} and row.recipients == []
    base = re.escape(app.config["PUBLIC_BASE_URL"].rstrip("/"))  # the configured public URL, not the Host
    link = re.fullmatch(base + r"/identity(/password/reset/[\w-]+)", sms["variables"]["link"]).group(1)

    mismatch = pages.post(link, {"password": "brand-new-pass-2", "password2": "different-2"})
    assert mismatch.status_code == 422
    assert pages.post(link, {"password": "brand-new-pass-2", "password2": "brand-new-pass-2"}).status_code == 302
    assert pages.login(CITIZEN["id_number"]).status_code == 401
    assert pages.login(CITIZEN["id_number"], "brand-new-pass-2").status_code == 302
    used = pages.client.get(link)
    assert used.status_code == 400 and "重置链接无效" in used.get_data(as_text=True)


def test_reset_link_comes_from_configuration_not_the_host_header(seeded, pages, app):
    """A client chooses ``Host``: a link built from it would hand the token to that host."""
    evil = {"Host": "evil.example"}
    form = pages.client.get("/password/forgot", headers=evil).get_data(as_text=True)
    token = CSRF_RE.search(form).group(1)
    response = pages.client.post("/password/forgot", headers=evil, data={
        "csrf_token": token, "id_number": CITIZEN["id_number"], "mobile": CITIZEN["mobile"]})
    assert response.status_code == 302
    response.close()
    [sms] = app.extensions["identity_notifier"].sent
    assert "evil.example" not in str(sms)
    assert sms["variables"]["link"].startswith(f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/identity/password/reset/")


def test_forgot_password_validates_input(pages):
    response = pages.post("/password/forgot?lang=en", {"id_number": "123", "mobile": ""},
                          token_from="/password/forgot?lang=en")
    assert response.status_code == 422
    assert "citizen ID number is malformed" in response.get_data(as_text=True)


def test_the_development_outbox_is_gone(client):
    """Reset links go through the hub; identity no longer shows messages it would have sent."""
    assert client.get("/dev/outbox").status_code == 404


def test_federation_link_only_when_configured(seeded, client):
    page = client.get("/login").get_data(as_text=True)
    assert "使用陕西省统一身份认证登录" not in page


def test_pages_work_without_javascript(seeded, client):
    for path in ("/login", "/register", "/password/forgot"):
        page = client.get(path).get_data(as_text=True)
        assert "<script" not in page and 'method="post"' in page


def test_linked_apps_are_listed_and_revocable(seeded, pages, app):
    from identity.oauth.clients import ClientSpec, register_client
    from identity.oauth.consents import list_consents, record_consent

    with app.app_context(), app.extensions["xsn_db"].session() as db:
        person = accounts.find_person_by_id_number(db, CITIZEN["id_number"])
        client, _secret = register_client(db, bytes.fromhex(app.config["KEK"]),
                                          ClientSpec(name="西安公积金", client_id="demo-fund",
                                                     redirect_uris=["https://fund.example/cb"]))
        record_consent(db, person.id, client.client_id, ["openid", "profile"])
        db.commit()
        person_id = person.id
    pages.login(CITIZEN["id_number"])
    page = pages.client.get("/account").get_data(as_text=True)
    assert 'id="apps"' in page and "西安公积金" in page and "openid profile" in page
    assert pages.post("/account/apps/demo-fund/revoke", {}, token_from="/account").status_code == 302
    assert "西安公积金" not in pages.client.get("/account").get_data(as_text=True)
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        assert list_consents(db, person_id) == []


def test_federation_link_when_an_upstream_is_configured(identity_app):
    app = identity_app(FEDERATION_UPSTREAM_ISSUER="http://127.0.0.1:9/identity", FEDERATION_CLIENT_ID="xian-node")
    page = app.test_client().get("/login?next=/authorize%3Fclient_id%3Dx").get_data(as_text=True)
    assert "使用陕西省统一身份认证登录" in page
    assert 'href="/federation/' in page and "next=/authorize" in page


def test_login_redirect_behind_the_gateway_keeps_the_prefix(app):
    """The gateway serves identity under /identity: the page to return to must keep it."""
    from urllib.parse import parse_qs, urlsplit

    client = app.test_client()
    response = client.get("/account", headers={"X-Forwarded-Prefix": "/identity"})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/identity/login"
    assert parse_qs(location.query)["next"] == ["/identity/account"]


def test_the_account_page_sets_changes_and_removes_the_e_mail_address(pages, app):
    resident = DEMO_RESIDENTS[1]
    pages.post("/register", {"name": resident["name"], "id_number": resident["id_number"], "mobile": "13811114444",
                              "password": "good-pass-1", "password2": "good-pass-1"})

    def stored():
        with app.app_context(), app.extensions["xsn_db"].session() as db:
            return accounts.decrypt_email(db, accounts.find_person_by_id_number(db, resident["id_number"]))

    assert stored() is None
    bad = pages.post("/account/email", {"email": "me@example.test\r\nBcc: x@example.test"}, token_from="/account")
    assert bad.status_code == 302 and bad.headers["Location"] == "/account#profile"
    assert "电子邮箱格式不正确" in pages.client.get("/account").get_data(as_text=True)
    assert stored() is None  # nothing written
    pages.post("/account/email", {"email": " Me@Example.TEST "}, token_from="/account")
    page = pages.client.get("/account").get_data(as_text=True)
    assert "电子邮箱已保存" in page and "m***@example.test" in page
    assert stored() == "me@example.test"
    pages.post("/account/email", {"email": ""}, token_from="/account")
    assert stored() is None
    forged = pages.client.post("/account/email", data={"csrf_token": "forged", "email": "x@example.test"})
    assert forged.status_code == 400 and stored() is None
