"""In Chromium, through the gateway: every service's Swagger UI renders from the service's own
assets (nothing fetched from another host), and the pages' security policy blocks nothing a
page needs (no violation reported on the login page, the seal console (its sign-in through identity), the
licence check page or the cashier)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _open(browser, url: str, ready: str) -> tuple[list[str], set[str]]:
    """The console's policy messages and the hosts asked for while ``url`` loads to ``ready``."""
    context = browser.new_context()
    page = context.new_page()
    violations: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc)
            if request.url.startswith("http") else None)
    try:
        page.goto(url)
        page.wait_for_selector(ready, timeout=15_000)
    finally:
        context.close()
    return violations, hosts


@pytest.mark.parametrize("service", ["identity", "seal", "licenses", "payment", "messaging", "gateway"])
def test_swagger_ui_renders_from_the_service_itself(suite, browser, service):
    gateway = suite.base_url("gateway")
    violations, hosts = _open(browser, f"{gateway}/{service}/docs", ".opblock")  # an operation shown
    assert violations == []
    assert hosts == {urlsplit(gateway).netloc}


@pytest.mark.parametrize(("path", "ready"), [
    ("/identity/login", "form"), ("/seal/manage", "form"), ("/licenses/check", "form"), ("/payment/cashier", "form")])
def test_pages_run_under_their_policy_without_violations(suite, browser, path, ready):
    gateway = suite.base_url("gateway")
    violations, hosts = _open(browser, gateway + path, ready)
    assert violations == []
    assert hosts == {urlsplit(gateway).netloc}
