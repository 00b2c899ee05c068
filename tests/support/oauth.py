"""Test helpers for the OAuth part (importable from tests, which have no packages)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from common.crypto.keystore import load_kek
from common.db import get_db
from identity.oauth import clients
from tests.support.console import CSRF_RE

REDIRECT = "http://127.0.0.1:8765/callback"
ISSUER = "https://gov.example/identity"
ZHANG, LI, WANG = "13800001234", "13900005678", "13700009012"  # L1 citizen, L2 citizen, L3 staff


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def register(app, **spec) -> tuple[str, str | None]:
    defaults = {"name": "测试应用", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["http://127.0.0.1:8765/"],
                "scopes": ["openid", "profile", "phone", "idcard", "offline_access"]}
    with app.app_context(), get_db(app).session() as session:
        client, secret = clients.register_client(session, load_kek(app.config),
                                                 clients.ClientSpec(**{**defaults, **spec}))
        session.commit()
        return client.client_id, secret


def query(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


class Browser:
    """A Flask test client used like a browser: login form, authorize, consent."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = app.test_client()

    def csrf(self, path: str) -> str:
        match = CSRF_RE.search(self.client.get(path).get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, login: str, password: str = "demo-password-1"):  # noqa: S107 - the seeded demo password
        response = self.client.post("/login", data={"csrf_token": self.csrf("/login"), "login": login,
                                                     "password": password})
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        return response

    def authorize_url(self, client_id: str, *, challenge: str | None, scope: str = "openid profile",
                      redirect_uri: str = REDIRECT, **extra) -> str:
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
                  "state": extra.pop("state", "st-" + secrets.token_hex(4)), **extra}
        if challenge:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        return "/oauth/authorize?" + urlencode(params)

    def consent(self, url: str, decision: str = "allow"):
        page = self.client.get(url)
        assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
        token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
        return self.client.post(url, data={"csrf_token": token, "decision": decision})

    def code(self, client_id: str, challenge: str | None, **params) -> tuple[str, dict[str, str]]:
        """Run authorize (consenting when asked) and return ``(code, callback query)``."""
        url = self.authorize_url(client_id, challenge=challenge, **params)
        response = self.client.get(url)
        if response.status_code == 200:
            response = self.consent(url)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        got = query(response.headers["Location"])
        assert "code" in got, got
        return got["code"], got


def jwks_of(app) -> KeySet:
    return KeySet.import_key_set(app.test_client().get("/jwks.json").get_json())


def decode(app, token: str) -> dict:
    return jwt.decode(token, jwks_of(app)).claims


def exchange(app, client_id, code, verifier, secret=None, **extra):
    """The authorization-code grant at the token endpoint (public client, or Basic auth with ``secret``)."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
            **extra}
    if secret is None:
        data["client_id"] = client_id
        return app.test_client().post("/oauth/token", data=data)
    return app.test_client().post("/oauth/token", data=data, auth=(client_id, secret))


def refresh(app, client_id, refresh_token, secret=None, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if secret is None:
        return app.test_client().post("/oauth/token", data={**data, "client_id": client_id})
    return app.test_client().post("/oauth/token", data=data, auth=(client_id, secret))
