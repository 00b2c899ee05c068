"""Done-when of the identity node, on the real processes: an app registered with the CLI logs a
demo citizen in through the gateway with code + PKCE in Chromium, gets tokens, calls userinfo,
refreshes and logs out; a service's client-credentials token is accepted by another service."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import urlencode

import pytest
import requests

from tests.support.oauth import pkce_pair, query
from tests.support.suite import client_token, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
# The relying party this test plays: a port nothing listens on (`xsn run` has its demo app on 8765).
APP = f"http://127.0.0.1:{free_port()}"


def test_app_registered_with_the_cli_logs_a_citizen_in_through_the_gateway(suite, browser):
    created = subprocess.run(
        [sys.executable, "-m", "common.ops.cli", "identity", "clients", "create", "--name", "浏览器测试应用",
         "--type", "public", "--redirect-uri", f"{APP}/callback", "--post-logout-redirect-uri", f"{APP}/",
         "--scope", "openid", "--scope", "profile", "--scope", "offline_access", "--json"],
        env=suite.child_env(), capture_output=True, text=True, check=True, timeout=60)
    client_id = json.loads(created.stdout.strip().splitlines()[-1])["client_id"]
    identity = f"{suite.base_url('gateway')}/identity"
    discovery = requests.get(f"{identity}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == identity

    verifier, challenge = pkce_pair()
    authorize = discovery["authorization_endpoint"] + "?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": f"{APP}/callback",
        "scope": "openid profile offline_access", "state": "browser-state", "nonce": "browser-nonce",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    landed: list[str] = []
    context = browser.new_context()
    page = context.new_page()
    # Nothing listens on the app's port: the test plays the app and records where it was sent.
    page.route(lambda url: url.startswith(f"{APP}/"), lambda route: (landed.append(route.request.url),
                                           route.fulfill(status=200, body="app", content_type="text/plain")))
    try:
        page.goto(authorize)
        assert "/identity/login" in page.url
        page.fill("input[name=login]", "13900005678")
        page.fill("input[name=password]", "demo-password-1")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert "浏览器测试应用" in page.content()  # the consent page names the app
        page.click("button[value=allow]")
        page.wait_for_url(f"{APP}/callback?*")
        callback = query(landed[-1])
        assert callback["state"] == "browser-state"

        tokens = requests.post(discovery["token_endpoint"], timeout=10, data={
            "grant_type": "authorization_code", "code": callback["code"], "redirect_uri": f"{APP}/callback",
            "client_id": client_id, "code_verifier": verifier}).json()
        assert {"access_token", "id_token", "refresh_token"} <= set(tokens), tokens
        userinfo = requests.get(discovery["userinfo_endpoint"], timeout=10,
                                headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert userinfo.status_code == 200 and userinfo.json()["name"] == "李四"
        refreshed = requests.post(discovery["token_endpoint"], timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}).json()
        assert refreshed["refresh_token"] != tokens["refresh_token"]

        # RP-initiated logout with the browser's cookies (the context's request API shares them).
        out = context.request.get(discovery["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": f"{APP}/", "state": "bye"}),
            max_redirects=0)
        assert out.status == 302 and out.headers["location"] == f"{APP}/?state=bye"
        # Logged out: the refresh tokens of the session are revoked, authorize asks for a login again.
        dead = requests.post(discovery["token_endpoint"], timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"], "client_id": client_id})
        assert dead.json()["error"] == "invalid_grant"
        # A new authorization request (a nonce is single use per client: the old URL is refused).
        page.goto(authorize.replace("nonce=browser-nonce", "nonce=browser-nonce-2"))
        assert "/identity/login" in page.url
    finally:
        context.close()


def test_client_credentials_token_of_one_service_is_accepted_by_another(suite):
    token = client_token(suite, "xsn-licenses", resource="xsn:seal")["access_token"]
    whoami = requests.get(f"{suite.base_url('seal')}/auth/whoami", timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["client_id"] == "xsn-licenses"
    refused = requests.get(f"{suite.base_url('payment')}/auth/whoami", timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401  # the token is for seal only
