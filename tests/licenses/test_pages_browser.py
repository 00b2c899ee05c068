"""The check page and the QR page in Chromium (served over HTTP from a test app)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_window_pastes_an_offline_code_and_sees_the_result(h, serve_app, browser):
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], fields=["name"]).get_json()
    code = h.client.post(f"/my/authorisations/{auth['id']}/offline-code", headers=h.holder("p-zhang")).get_json()
    base = serve_app(h.app)
    page = browser.new_page(locale="zh-CN")
    try:
        page.goto(f"{base}/check")
        assert page.locator("h1").inner_text() == "电子证照核验"
        page.fill("#code", code["code"])
        page.click("button[type=submit]")
        result = page.locator("#result")
        assert "核验通过" in result.inner_text() and "居住证" in result.inner_text()
        assert page.locator("#fields").inner_text().replace("\t", " ").strip() == "姓名 张三"
        page.fill("#code", code["code"][:-3] + "AAA")
        page.click("button[type=submit]")
        assert "核验未通过" in page.locator("#result").inner_text()
        page.goto(f"{base}/check?lang=en")
        assert page.locator("h1").inner_text() == "Verify an electronic licence"
    finally:
        page.close()


def test_holder_shows_the_qr(h, serve_app, browser):
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"]).get_json()
    page = browser.new_page(locale="zh-CN")
    try:
        page.goto(f"{serve_app(h.app)}/show")
        page.fill("#code", auth["code"])
        page.click("button[type=submit]")
        assert page.locator("#code").inner_text() == auth["code"]
        width = page.evaluate("document.getElementById('qr').naturalWidth")
        assert width > 100
    finally:
        page.close()


def test_an_offline_code_qr_fits_its_card(h, serve_app, browser):
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], fields=["name", "sex", "birth_date", "id_number", "address"]).get_json()
    code = h.client.post(f"/my/authorisations/{auth['id']}/offline-code", headers=h.holder("p-zhang")).get_json()
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{serve_app(h.app)}/show")
        page.fill("#code", code["code"])
        page.click("button[type=submit]")
        qr, card = page.locator("#qr").bounding_box(), page.locator(".card").bounding_box()
        inner = page.evaluate("(() => { const c = getComputedStyle(document.querySelector('.card'));"
                              " return document.querySelector('.card').clientWidth - parseFloat(c.paddingLeft)"
                              " - parseFloat(c.paddingRight); })()")
        assert page.evaluate("document.getElementById('qr').naturalWidth") > inner  # drawn wider than the card
        assert card["x"] <= qr["x"] and qr["x"] + qr["width"] <= card["x"] + card["width"] - 1
        assert "输入授权码" not in page.locator(".card").inner_text()  # nothing to type: scan only
    finally:
        page.close()
