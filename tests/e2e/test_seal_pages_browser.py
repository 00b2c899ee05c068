"""The seal-management pages in Chromium, on the real processes, through the gateway.

An administrator's token comes from identity's token endpoint (client credentials). The
demo ``xsn-admin`` client is only allowed ``identity:admin`` (identity/oauth_seed.py), so
the test registers a seal-console client with the CLI, as an operator would, allowed
``seal:admin`` for audience ``xsn:seal``. With that token the staff member signs in, sees the
demo organisation's seals with their pictures, and suspends then resumes one with the forms.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
DEMO_ORG = "西安市示范科技有限公司"


def _admin_token(suite) -> tuple[str, str]:
    created = subprocess.run(
        [sys.executable, "-m", "common.cli", "identity", "clients", "create", "--name", "印章管理控制台（测试）",
         "--grant-type", "client_credentials", "--scope", "seal:admin", "--audience", "xsn:seal",
         "--access-token-lifetime", "600", "--json"],
        env=suite.child_env(), capture_output=True, text=True, check=True, timeout=60)
    client = json.loads(created.stdout.strip().splitlines()[-1])
    response = requests.post(f"{suite.base_url('gateway')}/identity/oauth/token", timeout=10,
                             auth=(client["client_id"], client["client_secret"]),
                             data={"grant_type": "client_credentials", "scope": "seal:admin", "resource": "xsn:seal"})
    assert response.status_code == 200, response.text
    return client["client_id"], response.json()["access_token"]


def test_staff_signs_in_sees_the_demo_seals_and_suspends_then_resumes_one(suite, browser):
    gateway = suite.base_url("gateway")
    client_id, token = _admin_token(suite)
    api = {"Authorization": f"Bearer {token}"}
    seals = requests.get(f"{gateway}/seal/seals", headers=api, timeout=10)
    assert seals.status_code == 200, seals.text
    finance = next(s for s in seals.json() if s["org_name"] == DEMO_ORG and s["kind"] == "finance")
    assert finance["status"] == "active"

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{gateway}/seal/manage")
        assert "/seal/manage/login" in page.url  # not signed in yet
        assert "印章管理员登录" in page.content()
        page.fill("#token", token)
        page.click("form button[type=submit]")
        page.wait_for_url(f"{gateway}/seal/manage")
        assert client_id in page.inner_text("header")

        items = page.locator(".seal-item")
        names = items.locator(".seal-name").all_inner_texts()
        assert {f"{DEMO_ORG}{kind}" for kind in ("公章", "合同专用章", "证照专用章", "财务专用章")} <= set(names)
        pictures = page.locator(".seal-item img.seal-thumb")
        pictures.first.scroll_into_view_if_needed()
        page.wait_for_function("() => [...document.querySelectorAll('img.seal-thumb')]"
                               ".every(img => img.complete && img.naturalWidth > 0)", timeout=10_000)
        sizes = pictures.evaluate_all("imgs => imgs.map(img => [img.naturalWidth, img.naturalHeight])")
        assert len(sizes) == len(names) and all(size == [400, 400] for size in sizes), sizes

        row = page.locator(f'.seal-item[data-seal-id="{finance["id"]}"]')
        assert "正常" in row.inner_text()
        row.locator(".seal-name").click()
        page.wait_for_url(f"**/seal/manage/seals/{finance['id']}")
        assert page.locator("img.seal-big").evaluate("img => img.naturalWidth") == 400

        page.fill("#suspend-reason", "浏览器测试：年度审计")
        page.click("#suspend-form button[type=submit]")
        page.wait_for_selector("#resume-form")
        assert "印章已暂停使用" in page.inner_text(".flash")
        assert page.inner_text("#seal-status") == "已暂停"
        after_suspend = requests.get(f"{gateway}/seal/seals/{finance['id']}", headers=api, timeout=10).json()
        assert after_suspend["status"] == "suspended" and after_suspend["status_reason"] == "浏览器测试：年度审计"

        page.click("#resume-form button[type=submit]")
        page.wait_for_selector("#suspend-form")
        assert "印章已恢复使用" in page.inner_text(".flash")
        assert page.inner_text("#seal-status") == "正常"
        history = page.locator("table").last.inner_text()
        assert "暂停使用" in history and "恢复使用" in history and "浏览器测试：年度审计" in history
        assert client_id in history  # the actor is the token's subject

        page.goto(f"{gateway}/seal/manage?lang=en")
        assert "Electronic seal management" in page.inner_text("header")
    finally:
        context.close()
        current = requests.get(f"{gateway}/seal/seals/{finance['id']}", headers=api, timeout=10).json()
        if current.get("status") == "suspended":  # leave the shared suite as the other tests expect it
            requests.post(f"{gateway}/seal/seals/{finance['id']}/status", headers=api, timeout=10,
                          json={"action": "resume"})
    final = requests.get(f"{gateway}/seal/seals/{finance['id']}", headers=api, timeout=10).json()
    assert final["status"] == "active"
