"""The message hub on the real processes, through the gateway (issue 12 "done when", part).

* A newly registered citizen forgets the password: identity's reset link arrives as an SMS at
  the carrier simulator (identity's outbox → the worker → the hub → the simulator), the link
  from the SMS resets the password, and the new password signs in.
* A licence issued by a department's system and a payment notice issued to 赵六 each reach his
  in-app inbox (the licences and payment nodes' outboxes → the hub).
* In Chromium, 赵六 signs in to the inbox page, reads a message (the unread count drops) and
  deletes one.
"""

from __future__ import annotations

import re
import secrets
from datetime import date, timedelta

import pytest
import requests

from common.values.codes import CitizenId, CreditCode
from identity.seed import DEMO_PEOPLE
from tests.support.console import CSRF_RE
from tests.support.suite import client_token, wait_for

pytestmark = pytest.mark.e2e
ZHAO = next(p for p in DEMO_PEOPLE if p["name"] == "赵六")
ORG = CreditCode.build("91610113MA6TXX001").value
PASSWORD = "demo-password-1"


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connect from a loopback address of this module's own: identity limits reset requests and
    logins per client address, and the shared suite's other tests use 127.0.0.1."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = ("127.0.0.12", 0)
        super().init_poolmanager(*args, **kwargs)


def _browser() -> requests.Session:
    session = requests.Session()
    session.mount("http://", _FromAddress())
    return session


def _post_form(session: requests.Session, url: str, data: dict, **kwargs) -> requests.Response:
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text[:300]
    return session.post(page.url, data={"csrf_token": CSRF_RE.search(page.text).group(1), **data}, timeout=30,
                        **kwargs)


def _subject(suite, id_number: str) -> str:
    token = client_token(suite, "xsn-messaging", scope="identity:people:read", resource="xsn:identity")
    found = requests.post(f"{suite.base_url('gateway')}/identity/api/v1/people/search", timeout=10,
                          json={"id_number": id_number},
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert found.status_code == 200, found.text
    return found.json()["id"]


def _inbox(gateway: str, login: str) -> requests.Session:
    """A session signed in to the inbox page (identity's login form; the inbox client skips consent)."""
    session = _browser()
    start = session.get(f"{gateway}/messaging/me/inbox", timeout=30)
    assert "/identity/login" in start.url, start.url
    answer = session.post(start.url, timeout=30, data={"csrf_token": CSRF_RE.search(start.text).group(1),
                                                       "login": login, "password": PASSWORD})
    assert answer.status_code == 200 and answer.url.startswith(f"{gateway}/messaging/me/inbox"), answer.url
    return session


def _notice_for(suite, subject: str, key: str) -> dict:
    collector = client_token(suite, "xsn-dept-market", scope="payment:collect", resource="xsn:payment")
    body = {"payer_kind": "person", "payer_name": ZHAO["name"], "payer_id": ZHAO["id_number"],
            "payer_subject": subject, "items": [{"fee_code": "MKT-001", "quantity": 1}], "total_amount": 1000,
            "due_date": (date.today() + timedelta(days=7)).isoformat()}
    notice = requests.post(f"{suite.base_url('gateway')}/payment/notices", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {collector['access_token']}", "Idempotency-Key": key})
    assert notice.status_code == 201, notice.text
    return notice.json()


def test_password_reset_link_arrives_by_sms_and_resets_the_password(suite):
    gateway = suite.base_url("gateway")
    simulator = f"http://127.0.0.1:{suite.ports['sms-simulator']}"
    mobile = f"135{secrets.randbelow(10**8):08d}"
    id_number = CitizenId.build("610113", date(1996, 4, 1), secrets.randbelow(999) + 1).value
    browser = _browser()
    registered = _post_form(browser, f"{gateway}/identity/register", allow_redirects=False, data={
        "name": "钱九", "id_number": id_number, "mobile": mobile, "password": PASSWORD, "password2": PASSWORD})
    assert registered.status_code == 302, registered.text[:500]

    stranger = _browser()
    asked = _post_form(stranger, f"{gateway}/identity/password/forgot", allow_redirects=False,
                       data={"id_number": id_number, "mobile": mobile})
    assert asked.status_code == 302, asked.text[:300]
    sms = wait_for(lambda: requests.get(f"{simulator}/sim/messages", params={"phone": mobile}, timeout=10).json(),
                   60, "the reset SMS at the carrier simulator")
    assert len(sms) == 1
    assert (sms[0]["sign_name"], sms[0]["template_code"]) == ("西安统一身份认证", "SMS_XSN_PASSWORD_RESET")
    link = sms[0]["params"]["link"]
    assert link.startswith(f"{gateway}/identity/password/reset/"), link  # PUBLIC_BASE_URL, not a Host

    reset = _post_form(stranger, link, allow_redirects=False,
                       data={"password": "a-new-secret-9", "password2": "a-new-secret-9"})
    assert reset.status_code == 302, reset.text[:300]
    login = f"{gateway}/identity/login"
    assert _post_form(_browser(), login, {"login": mobile, "password": PASSWORD},
                      allow_redirects=False).status_code == 401
    assert _post_form(_browser(), login, {"login": mobile, "password": "a-new-secret-9"},
                      allow_redirects=False).status_code == 302
    assert requests.get(link, timeout=10).status_code == 400  # used up


def test_a_licence_and_a_payment_notice_reach_the_holders_inbox(suite):
    gateway = suite.base_url("gateway")
    zhao = _subject(suite, ZHAO["id_number"])
    issuer = client_token(suite, "xsn-licenses-demo-issuer", scope="licenses:issue", resource="xsn:licenses")
    suffix = secrets.token_hex(3)
    issued = requests.post(f"{gateway}/licenses/licences", timeout=60, json={
        "type_code": "food_business_license", "holder_code": ORG, "holder_name": "西安市示范科技有限公司",
        "fields": {"operator_name": "西安市示范科技有限公司", "legal_representative": "赵六",
                   "address": "西安市雁塔区科技路1号", "premises": f"科技路1号{suffix}",
                   "business_type": "餐饮服务经营者", "business_scope": "热食类食品制售"},
        "notify": [{"subject": zhao}]},
        headers={"Authorization": f"Bearer {issuer['access_token']}", "Idempotency-Key": f"msg-e2e-{suffix}"})
    assert issued.status_code == 201, issued.text
    face_number = issued.json()["face_number"]
    notice = _notice_for(suite, zhao, f"msg-e2e-notice-{suffix}")

    inbox = _inbox(gateway, ZHAO["mobile"])

    def arrived():
        page = inbox.get(f"{gateway}/messaging/me/inbox", timeout=30).text
        return page if face_number in page and notice["payment_code"] in page else None

    page = wait_for(arrived, 60, "the licence and payment notifications in 赵六's inbox")
    assert "电子证照已签发：食品经营许可证" in page and "缴费通知" in page


@pytest.mark.browser
def test_the_inbox_page_in_chromium(suite, browser):
    gateway = suite.base_url("gateway")
    zhao = _subject(suite, ZHAO["id_number"])
    suffix = secrets.token_hex(3)
    codes = [_notice_for(suite, zhao, f"msg-e2e-inbox-{suffix}-{n}")["payment_code"] for n in range(2)]
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{gateway}/messaging/me/inbox")
        assert "/identity/login" in page.url, page.url
        page.fill("input[name=login]", ZHAO["mobile"])
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{gateway}/messaging/me/inbox**")

        def row(code: str):
            return page.locator("tr[data-item]", has_text=code)

        def unread() -> int:
            return int(re.search(r"\d+", page.locator("#unread-count").inner_text()).group())

        for _ in range(120):  # the notices reach the hub through payment's outbox and the worker
            if row(codes[0]).count() and row(codes[1]).count():
                break
            page.wait_for_timeout(500)
            page.reload()
        assert row(codes[0]).get_attribute("class") == "unread", page.content()[:2000]
        before = unread()
        assert before >= 2

        row(codes[0]).locator("button", has_text="标为已读").click()
        page.wait_for_load_state()
        assert row(codes[0]).get_attribute("class") == "read"
        assert unread() == before - 1

        row(codes[1]).locator("button", has_text="删除").click()
        page.wait_for_load_state()
        assert row(codes[1]).count() == 0
        assert unread() == before - 2  # the deleted one was unread
        assert row(codes[0]).count() == 1
    finally:
        context.close()
