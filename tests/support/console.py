"""Test helpers for staff consoles (importable from tests, which have no packages).

:class:`GatewayBrowser` plays a browser behind the gateway without running one: requests
for ``<GATEWAY>/<service>/...`` go to the service app's test client with the gateway's
forwarding headers, requests for ``<GATEWAY>/identity/...`` go to a real identity node
served over HTTP (``serve_app``), whose public URL is :data:`GATEWAY` ``/identity``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from urllib.parse import urljoin

import requests

from common.db import get_db, utcnow
from common.web.console_login.models import seal_tokens
from common.web.console_login.views import COOKIE_HANDLES, tokens_cipher

GATEWAY = "http://127.0.0.1:18000"  # the gateway the tests play; nothing listens there
IDENTITY_TEST_CONFIG = {"PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_MEMORY_COST": 8, "PASSWORD_HASH_PARALLELISM": 1,
                        "LOGIN_RATE_LIMIT": "10000/minute", "OAUTH_TOKEN_FAILURE_LIMIT": "10000/minute"}
WANG, ZHANG = "13700009012", "13800001234"  # demo staff (seal admin, auditor); a citizen without staff roles
# The hidden CSRF field of every form (Flask-WTF): the one definition every test imports.
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class GatewayBrowser:
    def __init__(self, app, identity_url: str, *, service: str) -> None:
        self.client = app.test_client()
        self.prefix = f"/{service}"
        self.identity_url = identity_url
        self.idp = requests.Session()
        self.url = GATEWAY + "/"
        self.visited: list[str] = []
        host = GATEWAY.split("://", 1)[1]
        self.forwarded = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": host,
                          "X-Forwarded-Prefix": self.prefix}

    def request(self, method: str, url: str, data: dict | None = None):
        """One request, no redirect followed: ``(status, location, body)``."""
        target = urljoin(self.url, url)
        self.visited.append(target)
        self.url = target
        if target.startswith(GATEWAY + self.prefix + "/"):
            response = self.client.open(target[len(GATEWAY + self.prefix):], method=method, data=data,
                                        headers=self.forwarded)
            return response.status_code, response.headers.get("Location"), response.get_data(as_text=True)
        if target.startswith(f"{GATEWAY}/identity/"):
            target = self.identity_url + target[len(GATEWAY) + len("/identity"):]
        if not target.startswith(self.identity_url + "/"):
            raise AssertionError(f"the browser was sent off-site: {target}")
        self.url = target
        response = self.idp.request(method, target, data=data, allow_redirects=False, timeout=10)
        return response.status_code, response.headers.get("Location"), response.text

    def go(self, url: str, method: str = "GET", data: dict | None = None) -> tuple[int, str]:
        """Follow redirects like a browser: ``(status, body)`` of the page it lands on."""
        status, location, body = self.request(method, url, data)
        for _ in range(12):
            if status not in (301, 302, 303, 307) or not location:
                return status, body
            status, location, body = self.request("GET", location)
        raise AssertionError(f"redirect loop: {self.visited[-12:]}")

    def page(self) -> str:
        return self.request("GET", self.url)[2]

    @staticmethod
    def csrf(body: str) -> str:
        match = CSRF_RE.search(body)
        if match is None:
            raise AssertionError("no CSRF token on the page")
        return match.group(1)

    def sign_in(self, path: str, login: str, password: str = "demo-password-1") -> tuple[int, str]:  # noqa: S107
        """Open a console page, sign in on identity's login page, land back: ``(status, body)``."""
        status, body = self.go(GATEWAY + self.prefix + path)
        if status != 200 or 'name="password"' not in body:
            raise AssertionError(f"expected identity's login page, got {status} at {self.url}")
        return self.go(self.url, "POST", {"csrf_token": self.csrf(body), "login": login, "password": password})


def signed_in_client(app, session_model, console: str, *, subject: str, name: str, access_token: str):
    """A test client signed in to ``console`` as the sign-in callback signs one in: a session row
    (tokens encrypted under the app's KEK) and the cookie's handle."""
    handle = f"handle-{console}-{subject}-{hashlib.sha256(access_token.encode()).hexdigest()[:8]}"
    handle_hash = hashlib.sha256(handle.encode()).hexdigest()
    with get_db(app).session() as session:
        session.add(session_model(handle_hash=handle_hash, console=console, subject=subject, name=name,
                                  **seal_tokens(tokens_cipher(app), handle_hash, access_token=access_token,
                                                id_token="unused"),
                                  expires_at=utcnow() + timedelta(minutes=5)))
        session.commit()
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie[COOKIE_HANDLES] = {console: handle}
    return client
