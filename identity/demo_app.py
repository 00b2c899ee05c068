"""A demo government app (西安政务 demo app) that logs citizens in through the identity node.

It is the relying party a person uses to try flow 1 by hand after ``make run``
(http://127.0.0.1:8765): authorization code + PKCE through the gateway, ID-token checks,
userinfo, refresh and RP-initiated logout. It is a public client, like a browser or mobile
app, and keeps tokens in its own process memory (one gunicorn worker), never in the cookie.
It is not one of the six services and has no database.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Flask, abort, redirect, render_template, request, session, url_for
from jinja2 import ChoiceLoader, PackageLoader
from joserfc import jwt
from joserfc.jwk import KeySet

from common.web.i18n import init_i18n

CLIENT_ID = "xian-demo-app"
DEFAULT_PORT = 8765

CATALOG = {
    "zh": {"demo.title": "西安政务 演示应用", "demo.login": "使用西安统一身份认证登录",
           "demo.intro": "这是一个接入统一身份认证的政务应用示例：授权码 + PKCE，经统一接入网关。",
           "demo.hello": "您好，{name}", "demo.level": "可信等级", "demo.refresh": "刷新令牌",
           "demo.logout": "退出登录", "demo.userinfo": "用户信息（userinfo）", "demo.claims": "访问令牌声明",
           "demo.expires": "访问令牌剩余有效期（秒）", "demo.error": "登录未完成：{error}"},
    "en": {"demo.title": "Xi'an government demo app", "demo.login": "Log in with Xi'an unified identity",
           "demo.intro": "A government app that logs people in with the identity node: code + PKCE via the gateway.",
           "demo.hello": "Hello, {name}", "demo.level": "Assurance level", "demo.refresh": "Refresh tokens",
           "demo.logout": "Log out", "demo.userinfo": "User info (userinfo)", "demo.claims": "Access-token claims",
           "demo.expires": "Access token expires in (s)", "demo.error": "Login did not complete: {error}"},
}


class Provider:
    """Identity's endpoints and keys, read from its discovery document (cached)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer.rstrip("/")
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            response = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5)
            response.raise_for_status()
            self._metadata = response.json()
        return self._metadata

    def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            response = requests.get(self.metadata["jwks_uri"], timeout=5)
            response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
        return self._keys

    def id_token_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """:raise ValueError: signature, issuer, audience, expiry or nonce wrong."""
        try:
            claims = jwt.decode(id_token, self.keys(), algorithms=["ES256", "RS256"]).claims
        except Exception:
            claims = jwt.decode(id_token, self.keys(refresh=True), algorithms=["ES256", "RS256"]).claims
        aud = claims.get("aud")
        if claims.get("iss") != self.issuer or CLIENT_ID not in (aud if isinstance(aud, list) else [aud]):
            raise ValueError("ID token issuer or audience is wrong")
        if claims.get("exp", 0) < time.time() or claims.get("nonce") != nonce:
            raise ValueError("ID token expired or nonce mismatch")
        return claims


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("XSN_DEMO_APP_SECRET_KEY") or secrets.token_hex(32)
    app.config["SESSION_COOKIE_NAME"] = "xian_demo_app_session"
    app.jinja_loader = ChoiceLoader([app.jinja_loader, PackageLoader("common.web", "templates")])
    init_i18n(app, CATALOG)
    public = os.environ.get("XSN_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    provider = Provider(os.environ.get("XSN_OAUTH_ISSUER") or f"{public}/identity")
    tokens: dict[str, dict[str, Any]] = {}  # per browser session id, in this process only

    def callback_url() -> str:
        return url_for("callback", _external=True)

    @app.get("/")
    def home():
        entry = tokens.get(session.get("sid", ""))
        userinfo = None
        if entry:
            response = requests.get(provider.metadata["userinfo_endpoint"], timeout=5,
                                    headers={"Authorization": f"Bearer {entry['access_token']}"})
            userinfo = response.json() if response.ok else {"error": response.status_code}
        return render_template("demo_app/home.html", entry=entry, userinfo=userinfo,
                               error=request.args.get("error"), now=time.time())

    @app.post("/login")
    def login():
        state, nonce, verifier = generate_token(24), generate_token(24), generate_token(48)
        session["flow"] = {"state": state, "nonce": nonce, "verifier": verifier}
        query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": callback_url(),
                 "scope": "openid profile phone idcard org offline_access", "state": state, "nonce": nonce,
                 "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
        return redirect(f"{provider.metadata['authorization_endpoint']}?{urlencode(query)}")

    @app.get("/callback")
    def callback():
        flow = session.pop("flow", None)
        if not flow or request.args.get("state") != flow["state"]:
            abort(400, "state mismatch")
        if "error" in request.args:
            return redirect(url_for("home", error=request.args["error"]))
        response = requests.post(provider.metadata["token_endpoint"], timeout=5, data={
            "grant_type": "authorization_code", "code": request.args.get("code", ""),
            "redirect_uri": callback_url(), "client_id": CLIENT_ID, "code_verifier": flow["verifier"]})
        if not response.ok:
            return redirect(url_for("home", error=response.json().get("error", response.status_code)))
        body = response.json()
        claims = provider.id_token_claims(body["id_token"], flow["nonce"])
        sid = secrets.token_urlsafe(24)
        tokens[sid] = dict(body, id_claims=claims, obtained_at=time.time())
        session["sid"] = sid
        return redirect(url_for("home"))

    @app.post("/refresh")
    def refresh():
        entry = tokens.get(session.get("sid", ""))
        if entry and entry.get("refresh_token"):
            response = requests.post(provider.metadata["token_endpoint"], timeout=5, data={
                "grant_type": "refresh_token", "refresh_token": entry["refresh_token"], "client_id": CLIENT_ID})
            if response.ok:
                entry.update(response.json(), obtained_at=time.time())
            else:
                return redirect(url_for("home", error=response.json().get("error", response.status_code)))
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout():
        entry = tokens.pop(session.pop("sid", ""), None)
        if not entry:
            return redirect(url_for("home"))
        query = {"id_token_hint": entry["id_token"], "post_logout_redirect_uri": url_for("home", _external=True),
                 "client_id": CLIENT_ID}
        return redirect(f"{provider.metadata['end_session_endpoint']}?{urlencode(query)}")

    return app
