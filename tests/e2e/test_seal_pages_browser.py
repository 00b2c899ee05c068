"""The seal node's staff consoles in Chromium, on the real processes, through the gateway.

Staff sign in with their identity account: the console sends the browser to identity's
login page (OpenID Connect, code + PKCE), 王五 (demo staff: seal administrator and auditor)
signs in with the demo password and lands back in the console. A citizen without the roles
(张三) gets the 403 page. The API checks and the clean-up use a seal:admin client registered
with the CLI, as an operator's tooling would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
import requests

from common.crypto.gm import sm3
from tests.support.suite import client_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
DEMO_ORG = "西安市示范科技有限公司"
WANG, ZHANG, PASSWORD = "13700009012", "13800001234", "demo-password-1"


def _admin_token(suite) -> tuple[str, str]:
    created = subprocess.run(
        [sys.executable, "-m", "common.ops.cli", "identity", "clients", "create", "--name", "印章管理工具（测试）",
         "--grant-type", "client_credentials", "--scope", "seal:admin", "--audience", "xsn:seal",
         "--access-token-lifetime", "600", "--json"],
        env=suite.child_env(), capture_output=True, text=True, check=True, timeout=60)
    client = json.loads(created.stdout.strip().splitlines()[-1])
    token = client_token(suite, client["client_id"], client["client_secret"], scope="seal:admin", resource="xsn:seal")
    return client["client_id"], token["access_token"]


def _sign_in_at_identity(page, login: str) -> None:
    """On identity's login page (through the gateway): the demo account and password."""
    assert "/identity/login" in page.url, (page.url, page.inner_text("body")[:500])
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def _screenshot(page, name: str) -> None:
    folder = os.environ.get("XSN_TEST_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def test_staff_signs_in_sees_the_demo_seals_and_suspends_then_resumes_one(suite, browser):
    gateway = suite.base_url("gateway")
    _client_id, token = _admin_token(suite)
    api = {"Authorization": f"Bearer {token}"}
    seals = requests.get(f"{gateway}/seal/seals", headers=api, timeout=10)
    assert seals.status_code == 200, seals.text
    finance = next(s for s in seals.json() if s["org_name"] == DEMO_ORG and s["kind"] == "finance")
    assert finance["status"] == "active"

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{gateway}/seal/manage")  # not signed in: off to identity's login page
        _sign_in_at_identity(page, WANG)
        page.wait_for_url(f"{gateway}/seal/manage")
        assert "王五" in page.inner_text("#signed-in-user")
        seal_cookie = next(c for c in context.cookies() if c["name"] == "xsn_seal_session")
        assert len(seal_cookie["value"]) < 400 and seal_cookie["httpOnly"]  # a handle, not the tokens

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
        _screenshot(page, "seal-manage-detail")

        page.goto(f"{gateway}/seal/manage?lang=en")
        assert "Electronic seal management" in page.inner_text("header")
        _screenshot(page, "seal-manage-list")
        page.click("header form button[type=submit]")  # sign out: the console, then identity's login
        page.wait_for_url(f"{gateway}/seal/manage/signed-out")
        page.goto(f"{gateway}/seal/manage")
        assert "/identity/login" in page.url  # the password is asked for again
    finally:
        context.close()
        current = requests.get(f"{gateway}/seal/seals/{finance['id']}", headers=api, timeout=10).json()
        if current.get("status") == "suspended":  # leave the shared suite as the other tests expect it
            requests.post(f"{gateway}/seal/seals/{finance['id']}/status", headers=api, timeout=10,
                          json={"action": "resume"})
    final = requests.get(f"{gateway}/seal/seals/{finance['id']}", headers=api, timeout=10).json()
    assert final["status"] == "active"


def test_auditor_signs_in_searches_the_log_and_sees_an_entry_s_proof_checked(suite, browser):
    gateway = suite.base_url("gateway")
    service = client_token(suite, "xsn-licenses", scope="seal:sign", resource="xsn:seal")
    headers = {"Authorization": f"Bearer {service['access_token']}"}
    seal = next(s for s in requests.get(f"{gateway}/seal/seals/granted", headers=headers, timeout=10).json()
                if s["kind"] == "license")
    document = "审计控制台浏览器测试文档".encode()
    signed = requests.post(f"{gateway}/seal/seals/{seal['id']}/sign", timeout=10,
                           headers={**headers, "Idempotency-Key": "e2e-audit-console-1"},
                           json={"document_base64": base64.b64encode(document).decode()})
    assert signed.status_code == 201, signed.text  # a new key on a fresh suite: a new signature
    index = signed.json()["log_index"]

    # Audit tooling has a machine client of its own (xsn-auditor, audit:read only).
    tooling = client_token(suite, "xsn-auditor")
    assert tooling["scope"] == "audit:read"
    assert requests.get(f"{gateway}/seal/log/checkpoint", timeout=10,
                        headers={"Authorization": f"Bearer {tooling['access_token']}"}).status_code == 200

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{gateway}/seal/audit/")
        _sign_in_at_identity(page, WANG)
        page.wait_for_url(f"{gateway}/seal/audit/")
        assert "王五" in page.inner_text("#signed-in-user")
        page.fill("#document_digest", sm3(document).hex())
        page.click("form[method=get] button[type=submit]")
        page.wait_for_load_state()
        assert "检索结果（共 1 条）" in page.content()
        _screenshot(page, "seal-audit-search")
        page.click(f'a[href$="/seal/audit/entries/{index}"]')
        page.wait_for_url(f"**/seal/audit/entries/{index}")
        assert page.inner_text("#verdict") == "全部校验通过"
        steps = page.locator("tr.step").all_inner_texts()
        assert steps and all(step.startswith("✔") for step in steps), steps
        assert any(f"条目 {index}：包含证明" in step for step in steps)  # in the page's language
        assert any("GB/T 38540 各项校验均通过" in step for step in steps)
        assert "叶子哈希" in page.inner_text("body")
        # the checkpoint's signature line wraps inside its card instead of running past it
        assert page.evaluate("[...document.querySelectorAll('pre')].every(p => p.scrollWidth <= p.clientWidth)")
        _screenshot(page, "seal-audit-entry")
    finally:
        context.close()


def test_a_citizen_without_the_roles_is_refused_with_the_403_page(suite, browser):
    gateway = suite.base_url("gateway")
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        response = page.goto(f"{gateway}/seal/audit/")
        _sign_in_at_identity(page, ZHANG)
        assert page.url.startswith(f"{gateway}/seal/audit/")
        assert "没有权限" in page.inner_text("#console-message") and "audit:read" in page.content()
        response = page.goto(f"{gateway}/seal/manage")  # identity's login lasts: straight to the verdict
        assert response.status == 403 and "seal:admin" in page.inner_text("#console-message")
        _screenshot(page, "seal-console-forbidden")
    finally:
        context.close()


def test_a_console_opened_on_another_loopback_name_signs_in_on_the_public_host(suite, browser):
    """``make run`` also serves localhost:8000; the sign-in's callback is the configured
    127.0.0.1:8000, so a flow begun on localhost lost its cookie (登录未完成). The gateway sends
    the page to the public host first."""
    gateway = suite.base_url("gateway")
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(gateway.replace("127.0.0.1", "localhost") + "/seal/audit/?lang=zh")
        _sign_in_at_identity(page, WANG)
        page.wait_for_url(f"{gateway}/seal/audit/?lang=zh")
        assert page.inner_text("#signed-in-user") == "已登录： 王五"
    finally:
        context.close()
