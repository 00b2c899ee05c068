"""A demo government app (西安政务演示应用) that logs citizens in through the identity node.

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

from flask import Flask, abort, redirect, render_template, request, session, url_for
from jinja2 import ChoiceLoader, PackageLoader

from common.oidc_client import Client, OIDCError, OpenIDProvider
from common.web.i18n import init_i18n

CLIENT_ID = "xian-demo-app"
SCOPE = "openid profile phone idcard org offline_access"
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


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ.get("XSN_DEMO_APP_SECRET_KEY") or secrets.token_hex(32)
    app.config["SESSION_COOKIE_NAME"] = "xian_demo_app_session"
    app.jinja_loader = ChoiceLoader([app.jinja_loader, PackageLoader("common.web", "templates")])
    init_i18n(app, CATALOG)
    public = os.environ.get("XSN_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    # A public client seen from outside: discovery, keys and tokens through the gateway.
    provider = OpenIDProvider(os.environ.get("XSN_OAUTH_ISSUER") or f"{public}/identity")
    tokens: dict[str, dict[str, Any]] = {}  # per browser session id, in this process only

    def client() -> Client:
        return Client(CLIENT_ID, url_for("callback", _external=True), SCOPE)

    @app.get("/")
    def home():
        entry = tokens.get(session.get("sid", ""))
        userinfo = None
        if entry:
            try:
                userinfo = provider.userinfo(entry["access_token"])
            except OIDCError as exc:
                userinfo = {"error": exc.code}
        return render_template("demo_app/home.html", entry=entry, userinfo=userinfo,
                               error=request.args.get("error"), now=time.time())

    @app.post("/login")
    def login():
        started = provider.authorization_request(client())
        session["flow"] = {"state": started.state, "nonce": started.nonce, "verifier": started.code_verifier}
        return redirect(started.url)

    @app.get("/callback")
    def callback():
        flow = session.pop("flow", None)
        if not flow or not secrets.compare_digest(request.args.get("state", ""), flow["state"]):
            abort(400, "state mismatch")
        if "error" in request.args:
            return redirect(url_for("home", error=request.args["error"][:64]))
        try:
            body = provider.exchange_code(client(), request.args.get("code", ""), flow["verifier"])
            claims = provider.verify_id_token(body["id_token"], client_id=CLIENT_ID, nonce=flow["nonce"],
                                              access_token=body["access_token"])
        except OIDCError as exc:
            return redirect(url_for("home", error=exc.extra.get("error") or exc.code))
        sid = secrets.token_urlsafe(24)
        tokens[sid] = dict(body, id_claims=claims, obtained_at=time.time())
        session["sid"] = sid
        return redirect(url_for("home"))

    @app.errorhandler(OIDCError)
    def provider_failed(exc: OIDCError):
        # Discovery or keys unreachable, or a provider naming another issuer: say so, no 500.
        return render_template("demo_app/home.html", entry=None, userinfo=None, error=exc.code,
                               now=time.time()), exc.status

    @app.post("/refresh")
    def refresh():
        entry = tokens.get(session.get("sid", ""))
        if entry and entry.get("refresh_token"):
            try:
                entry.update(provider.refresh(client(), entry["refresh_token"]), obtained_at=time.time())
            except OIDCError as exc:
                return redirect(url_for("home", error=exc.extra.get("error") or exc.code))
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout():
        entry = tokens.pop(session.pop("sid", ""), None)
        if not entry:
            return redirect(url_for("home"))
        return redirect(provider.end_session_url(entry["id_token"], url_for("home", _external=True),
                                                 client_id=CLIENT_ID))

    return app
