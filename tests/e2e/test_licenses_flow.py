"""The licences flow on the real processes, through the gateway (issue 11 "done when", part).

A department's system (client credentials, ``licenses:issue``) issues a sealed food-business
licence to the demo organisation; the seal is the real seal node's (the approval bureau's
licence seal, which the seal seed grants to ``xsn-licenses``). 赵六, the organisation's legal
representative, signs in at identity in Chromium (code + PKCE, through the demo app's public
client, which identity's seed allows ``licenses:holder``) and, with his own token, sees the licence and
authorises a window for two fields for ten minutes; the window verifies online and sees only
those fields; the use appears in his record; his offline code verifies with the CLI; after
revocation both online and offline (refreshed status list) say so.

Every client is one identity's seed registers (secrets from ``<var_dir>/clients.json``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests

from common.values.codes import CreditCode
from identity.oauth.seed import DEMO_APP, DEMO_APP_PORT
from tests.support.suite import client_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ORG = CreditCode.build("91610113MA6TXX001").value
ZHAO, PASSWORD = "13600003456", "demo-password-1"
WINDOW = "xsn-window-demo"  # a service window's system (licenses:verify)
ISSUER = "xsn-licenses-demo-issuer"  # the approval bureau's system (licenses.config LICENSES_ISSUER_CLIENTS)
# The demo app's callback: Chromium never reaches it (the route below answers in its place).
REDIRECT = f"http://127.0.0.1:{DEMO_APP_PORT}/callback"


def _service_token(suite, client_id: str, scope: str, audience: str) -> str:
    return client_token(suite, client_id, scope=scope, resource=audience)["access_token"]


def _person_token(suite, browser, login: str) -> str:
    """Sign in at identity in Chromium (code + PKCE) and exchange the code for a token."""
    gateway = suite.base_url("gateway")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": DEMO_APP, "redirect_uri": REDIRECT,
             "scope": "openid licenses:holder idcard:full org", "state": "s1", "code_challenge": challenge,
             "code_challenge_method": "S256", "nonce": "n1"}
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    captured: list[str] = []
    page.route(f"http://127.0.0.1:{DEMO_APP_PORT}/**",
               lambda route: (captured.append(route.request.url), route.fulfill(status=200, body="ok")))
    try:
        page.goto(f"{gateway}/identity/oauth/authorize?{urlencode(query)}")
        assert "/identity/login" in page.url, page.url
        page.fill("input[name=login]", login)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        allow = page.locator("button[name=decision][value=allow]")
        consented = False
        for _ in range(200):  # up to 20 s on a busy machine: the consent page, then the redirect
            if captured:
                break
            if not consented and allow.count():  # the demo app (no skip_consent) asks 赵六's consent
                allow.click()
                consented = True
            page.wait_for_timeout(100)
    finally:
        context.close()
    assert captured, "identity did not redirect back with a code"
    code = parse_qs(urlparse(captured[0]).query)["code"][0]
    token = requests.post(f"{gateway}/identity/oauth/token", timeout=10,
                          data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                "client_id": DEMO_APP, "code_verifier": verifier})
    assert token.status_code == 200, token.text
    return token.json()["access_token"]


def test_issue_authorise_verify_online_and_offline_then_revoke(suite, browser, tmp_path):
    gateway = suite.base_url("gateway")
    lic = f"{gateway}/licenses"
    issuer = {"Authorization": "Bearer " + _service_token(suite, ISSUER, "licenses:issue", "xsn:licenses")}
    fields = {"operator_name": "西安市示范科技有限公司", "legal_representative": "赵六",
              "address": "西安市雁塔区科技路1号", "premises": "西安市雁塔区科技路1号一层",
              "business_type": "餐饮服务经营者", "business_scope": "热食类食品制售"}
    issued = requests.post(f"{lic}/licences", headers={**issuer, "Idempotency-Key": "e2e-1"}, timeout=60, json={
        "type_code": "food_business_license", "holder_code": ORG, "holder_name": "西安市示范科技有限公司",
        "fields": fields})
    assert issued.status_code == 201, issued.text
    licence = issued.json()

    holder = {"Authorization": f"Bearer {_person_token(suite, browser, ZHAO)}"}
    mine = requests.get(f"{lic}/my/licences", headers=holder, timeout=30)
    assert mine.status_code == 200, mine.text
    # The suite is shared: other tests issue to the same company (test_licenses_holder_browser.py).
    assert licence["identifier"] in [m["identifier"] for m in mine.json()]
    document = requests.get(f"{lic}/my/licences/{licence['id']}/document", headers=holder, timeout=10).content
    signature = requests.get(f"{lic}/my/licences/{licence['id']}/signature", headers=holder, timeout=10).content
    check = requests.post(f"{gateway}/seal/verify", timeout=30, json={
        "signature_base64": base64.b64encode(signature).decode(),
        "document_base64": base64.b64encode(document).decode()})
    assert check.json()["valid"] is True, check.text

    auth = requests.post(f"{lic}/my/authorisations", headers=holder, timeout=10, json={
        "licence_id": licence["id"], "fields": ["operator_name", "business_scope"], "purpose": "招投标资格审查",
        "audience": WINDOW, "minutes": 10, "max_uses": 3})
    assert auth.status_code == 201, auth.text
    window = {"Authorization": f"Bearer {_service_token(suite, WINDOW, 'licenses:verify', 'xsn:licenses')}"}
    verified = requests.post(f"{lic}/verify", headers=window, json={"code": auth.json()["code"]}, timeout=30)
    assert verified.status_code == 200, verified.text
    assert set(verified.json()["fields"]) == {"operator_name", "business_scope"}
    # Bodies off /verify's fast path get the schema's errors through the door too, and use nothing.
    for body in ({"code": "A" * 65}, {"code": auth.json()["code"], "extra": 1}, ["x"]):
        bad = requests.post(f"{lic}/verify", headers=window, json=body, timeout=30)
        assert bad.status_code == 422 and bad.json()["code"] == "validation_failed", bad.text
        assert bad.headers["Content-Type"].startswith("application/problem+json")
    # A second verification of the now known code takes the one-round-trip path; a forged
    # X-Forwarded-For does not change who the gateway says the caller is, and the use is recorded.
    again = requests.post(f"{lic}/verify", headers={**window, "X-Forwarded-For": "203.0.113.9"},
                          json={"code": auth.json()["code"]}, timeout=30)
    assert again.status_code == 200 and again.json()["fields"] == verified.json()["fields"], again.text
    uses = requests.get(f"{lic}/my/licences/{licence['id']}/uses", headers=holder, timeout=10).json()
    assert [(u["verifier"], u["outcome"]) for u in uses] == [(WINDOW, "accepted")] * 2
    # A code the holder gave another organisation is refused to this window through the door too
    # (problem+json, nothing disclosed), whatever X-Forwarded-For the window sends.
    other = requests.post(f"{lic}/my/authorisations", headers=holder, timeout=10, json={
        "licence_id": licence["id"], "fields": ["operator_name"], "purpose": "招投标资格审查",
        "audience": "xsn-dept-market", "minutes": 10, "max_uses": 3})
    assert other.status_code == 201, other.text
    refused = requests.post(f"{lic}/verify", headers={**window, "X-Forwarded-For": "203.0.113.9"},
                            json={"code": other.json()["code"]}, timeout=30)
    assert refused.status_code == 403 and refused.json()["code"] == "wrong_audience", refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json") and "fields" not in refused.json()

    # The holder withdraws an authorisation through the door (DELETE): a code verified once (on
    # PostgreSQL now cached in the node) is refused from then on.
    withdrawn = requests.post(f"{lic}/my/authorisations", headers=holder, timeout=10, json={
        "licence_id": licence["id"], "fields": ["operator_name"], "purpose": "招投标资格审查",
        "audience": WINDOW, "minutes": 10, "max_uses": 3})
    assert withdrawn.status_code == 201, withdrawn.text
    code = withdrawn.json()["code"]
    assert requests.post(f"{lic}/verify", headers=window, json={"code": code}, timeout=30).status_code == 200
    deleted = requests.delete(f"{lic}/my/authorisations/{withdrawn.json()['id']}", headers=holder, timeout=10)
    assert deleted.status_code == 200, deleted.text
    refused = requests.post(f"{lic}/verify", headers=window, json={"code": code}, timeout=30)
    assert refused.status_code == 410 and refused.json()["code"] == "authorisation_revoked", refused.text

    offline = requests.post(f"{lic}/my/authorisations/{auth.json()['id']}/offline-code", headers=holder, timeout=10)
    assert offline.status_code == 201, offline.text
    trust, status = tmp_path / "trust.json", tmp_path / "status.json"
    trust.write_text(requests.get(f"{lic}/offline/trust-list", timeout=10).text)
    status.write_text(requests.get(f"{lic}/offline/status-list", timeout=10).text)
    command = [sys.executable, "-m", "common.ops.cli", "licenses", "verify-qr", offline.json()["code"],
               "--trust-list", str(trust), "--status-list", str(status)]
    assert subprocess.run(command, capture_output=True, timeout=60).returncode == 0

    revoked = requests.post(f"{lic}/licences/{licence['id']}/status", headers=issuer, timeout=10,
                            json={"action": "revoke", "reason": "申请注销", "kind": "cancelled"})
    assert revoked.status_code == 200, revoked.text
    refused = requests.post(f"{lic}/verify", headers=window, json={"code": auth.json()["code"]}, timeout=30)
    assert refused.status_code == 409 and refused.json()["code"] == "licence_revoked"
    status.write_text(requests.get(f"{lic}/offline/status-list", timeout=10).text)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and json.loads(result.stdout)["code"] == "licence_not_valid"
