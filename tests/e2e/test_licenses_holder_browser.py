"""The holder's pages (我的证照) in Chromium, on the real processes, through the gateway.

The approval bureau's system issues a food-business licence to the demo company; 赵六, its legal
representative, opens ``/licenses/me`` and is sent to identity's login page (the pages' own
client ``xsn-licenses-holder``, code + PKCE), signs in, agrees once that the licences node reads
his ID number and organisations, and lands on his licences. He opens the licence, authorises
the demo window for two fields for ten minutes and sees the code and the link to its QR page;
the window verifies the code through the API; the use shows on his licence page; he revokes
the authorisation and the window is refused from then on.
"""

from __future__ import annotations

import os

import pytest
import requests

from common.values.codes import CreditCode
from tests.support.suite import client_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ORG = CreditCode.build("91610113MA6TXX001").value
ZHAO, PASSWORD = "13600003456", "demo-password-1"
WINDOW = "xsn-window-demo"  # a service window's system (licenses:verify)
ISSUER = "xsn-licenses-demo-issuer"  # the approval bureau's system


def _bearer(suite, client_id: str, scope: str) -> dict[str, str]:
    token = client_token(suite, client_id, scope=scope, resource="xsn:licenses")["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("XSN_TEST_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def _sign_in(page, landing: str) -> None:
    """On identity's login page: 赵六's account; then the consent page, once; then ``landing``."""
    assert "/identity/login" in page.url, (page.url, page.inner_text("body")[:500])
    page.fill("input[name=login]", ZHAO)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    allow = page.locator("button[name=decision][value=allow]")
    for _ in range(200):  # up to 20 s on a busy machine
        if page.url.startswith(landing):
            return
        if allow.count():
            assert "身份证" in page.inner_text("body")  # what he agrees to: idcard:full
            allow.click()
        page.wait_for_timeout(100)
    raise AssertionError(f"not back on the holder's pages: {page.url}")


def test_holder_authorises_two_fields_the_window_verifies_the_use_shows_and_is_revoked(suite, browser):
    gateway = suite.base_url("gateway")
    lic = f"{gateway}/licenses"
    fields = {"operator_name": "西安市示范科技有限公司", "legal_representative": "赵六",
              "address": "西安市雁塔区科技路1号", "premises": "西安市雁塔区科技路1号一层",
              "business_type": "餐饮服务经营者", "business_scope": "热食类食品制售"}
    issued = requests.post(f"{lic}/licences", timeout=60,
                           headers={**_bearer(suite, ISSUER, "licenses:issue"), "Idempotency-Key": "e2e-holder-1"},
                           json={"type_code": "food_business_license", "holder_code": ORG,
                                 "holder_name": "西安市示范科技有限公司", "fields": fields})
    assert issued.status_code == 201, issued.text
    licence = issued.json()
    window = _bearer(suite, WINDOW, "licenses:verify")

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{lic}/me")
        _sign_in(page, f"{lic}/me")
        assert page.locator("h1").inner_text() == "我的证照" and "赵六" in page.inner_text("#signed-in-user")
        row = page.locator(f'tr[data-licence="{licence["id"]}"]')
        assert licence["face_number"] in row.inner_text() and "有效" in row.inner_text()

        row.locator("a").first.click()
        page.wait_for_url(f"**/licenses/me/licences/{licence['id']}")
        assert page.inner_text("#holder-name") == "西安市示范科技有限公司"  # his company's, unmasked
        assert "热食类食品制售" in page.inner_text("#face")
        page.click("#authorise")
        page.wait_for_url(f"**/licenses/me/licences/{licence['id']}/authorise")
        page.check('input[name=fields][value="operator_name"]')
        page.check('input[name=fields][value="business_scope"]')
        page.fill("#purpose", "招投标资格审查")
        page.fill("#audience", WINDOW)
        page.fill("#minutes", "10")
        page.fill("#max_uses", "3")
        page.click("#authorise-form button[type=submit]")
        page.wait_for_selector("#code")
        code = page.inner_text("#code").strip()
        assert len(code) == 10 and "经营者名称、经营项目" in page.inner_text("#auth-fields")
        authorisation = page.url.rsplit("/", 1)[1]
        # The QR page is found by the authorisation's id: the code, a bearer secret, is in no URL.
        assert page.get_attribute("#show", "href").endswith(f"/licenses/me/authorisations/{authorisation}/qr")
        assert "赵六（本人）" in page.inner_text("#granted-by")
        _screenshot(page, "licenses-holder-authorisation")
        page.click("#show")
        page.wait_for_selector("img#qr")
        assert page.inner_text("#code") == code and code not in page.url

        verified = requests.post(f"{lic}/verify", headers=window, json={"code": code}, timeout=30)
        assert verified.status_code == 200, verified.text
        assert set(verified.json()["fields"]) == {"operator_name", "business_scope"}

        page.goto(f"{lic}/me/licences/{licence['id']}")
        uses = page.inner_text("#uses")
        assert "核验通过" in uses and WINDOW in uses and "招投标资格审查" in uses
        granted = page.locator("#authorisations tr", has_text=code)
        assert "1 / 3" in granted.inner_text() and "有效" in granted.inner_text()
        _screenshot(page, "licenses-holder-licence")
        granted.locator("button[type=submit]").click()
        page.wait_for_selector(".flash")
        assert f"授权 {code} 已撤销" in page.inner_text(".flash")
        assert page.locator("#authorisations tr", has_text=code).locator(".state").inner_text() == "已撤销"

        refused = requests.post(f"{lic}/verify", headers=window, json={"code": code}, timeout=30)
        assert refused.status_code == 410 and refused.json()["code"] == "authorisation_revoked", refused.text

        page.goto(f"{lic}/me?lang=en")
        assert page.locator("h1").inner_text() == "My licences"
    finally:
        context.close()


def _authorise(page, lic: str, licence_id: str, purpose: str) -> tuple[str, str]:
    """On the holder's pages: authorise the demo window for one field; ``(authorisation id, code)``."""
    page.goto(f"{lic}/me/licences/{licence_id}/authorise")
    page.check('input[name=fields][value="operator_name"]')
    page.fill("#purpose", purpose)
    page.fill("#audience", WINDOW)
    page.click("#authorise-form button[type=submit]")
    page.wait_for_selector("#code")
    return page.url.rsplit("/", 1)[1], page.inner_text("#code").strip()


def test_a_revoke_without_its_sessions_csrf_token_is_refused_and_revokes_nothing(suite, browser):
    """Through the gateway, on the real processes: 赵六's revoke POST (his session cookie goes
    with it, as a forged cross-site form's would) without a CSRF token, or with the token of
    another session of his, is refused with the error page; the authorisation stays usable.
    The other session's token is a real one: that session revokes with it."""
    gateway = suite.base_url("gateway")
    lic = f"{gateway}/licenses"
    issued = requests.post(f"{lic}/licences", timeout=60,
                           headers={**_bearer(suite, ISSUER, "licenses:issue"), "Idempotency-Key": "e2e-holder-csrf"},
                           json={"type_code": "food_business_license", "holder_code": ORG,
                                 "holder_name": "西安市示范科技有限公司",
                                 "fields": {"operator_name": "西安市示范科技有限公司", "legal_representative": "赵六",
                                            "address": "西安市雁塔区科技路1号", "premises": "西安市雁塔区科技路1号一层",
                                            "business_type": "餐饮服务经营者", "business_scope": "热食类食品制售"}})
    assert issued.status_code == 201, issued.text
    licence = issued.json()
    window = _bearer(suite, WINDOW, "licenses:verify")
    mine, other = browser.new_context(locale="zh-CN"), browser.new_context(locale="zh-CN")
    try:
        page = mine.new_page()
        page.goto(f"{lic}/me")
        _sign_in(page, f"{lic}/me")
        authorisation, code = _authorise(page, lic, licence["id"], "CSRF 检查")
        second = other.new_page()
        second.goto(f"{lic}/me")
        _sign_in(second, f"{lic}/me")
        second.goto(f"{lic}/me/authorisations/{authorisation}")
        others_token = second.get_attribute("input[name=csrf_token]", "value")
        own_token = page.get_attribute("input[name=csrf_token]", "value")
        assert others_token and own_token and others_token != own_token

        revoke = f"{lic}/me/authorisations/{authorisation}/revoke"
        for form in ({}, {"csrf_token": others_token}):
            refused = mine.request.post(revoke, form=form, max_redirects=0)
            assert refused.status == 400 and 'data-code="csrf_failed"' in refused.text(), (form, refused.status)
        page.goto(f"{lic}/me/authorisations/{authorisation}")
        assert page.inner_text("#state") == "有效"
        verified = requests.post(f"{lic}/verify", headers=window, json={"code": code}, timeout=30)
        assert verified.status_code == 200, verified.text

        done = other.request.post(revoke, form={"csrf_token": others_token}, max_redirects=0)
        assert done.status == 302, done.status
        refused = requests.post(f"{lic}/verify", headers=window, json={"code": code}, timeout=30)
        assert refused.status_code == 410 and refused.json()["code"] == "authorisation_revoked", refused.text
    finally:
        mine.close()
        other.close()
