"""Staff-console sign-in with the identity node: OpenID Connect, code flow + PKCE (S256).

A service's staff console (seal management, the auditor console, ...) is a confidential
OAuth client of identity. :func:`make_console_login` builds the sign-in blueprint of one
console: ``login`` starts the flow (state, nonce, PKCE verifier kept server-side), the
browser signs in at identity through the gateway, ``callback`` checks the state (single use),
exchanges the code server-to-server at identity's internal URL with the client secret,
verifies the ID token (signature from identity's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``,
``at_hash``) and the access token (:func:`common.web.auth.get_verifier`, audience
``xsn:<service>``), and keeps both server-side; the browser's cookie holds only a random
handle. ``logout`` ends the console session and identity's login (RP-initiated logout).

Page views call :func:`current_console_claims` (or use :func:`console_required`): the access
token is verified again on every view (fail closed: expired, revoked key or wrong audience
means signing in again) and its scopes checked; a person signed in without the scopes gets a
403 page, never a redirect loop.

Storage: two small tables per service (:class:`ConsoleLoginMixin`,
:class:`ConsoleSessionMixin`), registered with :func:`init_console_login`. Tokens are not
kept in the cookie: two consoles' access and ID tokens together overflow a 4 KB cookie.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
import structlog
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from joserfc import jws, jwt
from joserfc.errors import JoseError
from sqlalchemy import String, Text, delete
from sqlalchemy.orm import Mapped, mapped_column

from common.db import UTCDateTime, get_db, utcnow
from common.http import ServiceClient
from common.web.auth import InvalidToken, get_verifier, resolved_settings, scopes_of
from common.web.i18n import _, init_i18n
from common.web.pages import protect

log = structlog.get_logger("xsn.console_login")

SETTINGS: dict[str, Any] = {
    # The console client's secret. Embedded: read from var/clients.json (identity's seed).
    "CONSOLE_CLIENT_SECRET": None,
}
PENDING_LIFETIME = timedelta(minutes=10)
PENDING_PER_CONSOLE = 3  # flows a browser may have open at once (tabs)
COOKIE_HANDLES, COOKIE_PENDING = "xsn_console", "xsn_console_pending"
ID_TOKEN_ALGS = ["ES256", "RS256"]

CATALOG = {
    "zh": {
        "console.signed_in_as": "当前用户",
        "console.sign_out": "退出",
        "console.sign_in_again": "重新登录",
        "console.signed_out": "您已退出。",
        "console.forbidden": "没有权限",
        "console.forbidden_help": "您已以统一身份认证账号登录，但该账号没有使用此控制台的权限（需要：{scopes}）。"
                                  "如需开通，请联系本单位的系统管理员。",
        "console.failed": "登录未完成",
        "console.failed.state": "登录请求已失效或不是从本页面发起的，请重新登录。",
        "console.failed.denied": "统一身份认证未授权本次登录（{error}）。",
        "console.failed.exchange": "无法从统一身份认证取得令牌，请稍后重试。",
        "console.failed.token": "统一身份认证返回的令牌未通过校验。",
        "console.unavailable": "统一身份认证暂时无法访问，请稍后重试。",
    },
    "en": {
        "console.signed_in_as": "Signed in as",
        "console.sign_out": "Sign out",
        "console.sign_in_again": "Sign in again",
        "console.signed_out": "You have signed out.",
        "console.forbidden": "No permission",
        "console.forbidden_help": "You are signed in with your identity account, but it may not use this console "
                                  "(needed: {scopes}). Ask your organisation's administrator for access.",
        "console.failed": "Sign-in did not complete",
        "console.failed.state": "The sign-in request has expired or was not started from this page. Please sign in "
                                "again.",
        "console.failed.denied": "The identity node did not authorise this sign-in ({error}).",
        "console.failed.exchange": "No tokens could be obtained from the identity node. Please try again later.",
        "console.failed.token": "The tokens from the identity node did not verify.",
        "console.unavailable": "The identity node cannot be reached right now. Please try again later.",
    },
}


# -- storage ----------------------------------------------------------------------------------
class ConsoleLoginMixin:
    """A sign-in in progress (``__tablename__ = "console_logins"``), keyed by SHA-256 of the state."""

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    console: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ConsoleSessionMixin:
    """A signed-in console (``__tablename__ = "console_sessions"``), keyed by SHA-256 of the cookie's handle."""

    handle_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    console: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    access_token: Mapped[str] = mapped_column(Text)
    id_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _models(app: Flask | None = None):
    return (app or current_app).extensions["xsn_console_models"]


# -- errors shown as pages ----------------------------------------------------------------------
class ConsoleForbidden(Exception):
    """Signed in, but without the console's scopes: a 403 page (with a sign-out button)."""

    def __init__(self, console: str, missing: set[str]) -> None:
        super().__init__(f"missing scopes {sorted(missing)}")
        self.console, self.missing = console, missing


class ConsoleLoginFailed(Exception):
    """The sign-in could not complete: a page saying why, with a way to start again."""

    def __init__(self, console: str, message_key: str, status: int = 400, **params: str) -> None:
        super().__init__(message_key)
        self.console, self.message_key, self.status, self.params = console, message_key, status, params


# -- identity's endpoints -------------------------------------------------------------------------
class Provider:
    """Identity's discovery document, fetched from its internal URL and cached.

    The browser is sent to the public endpoints (through the gateway); the token endpoint is
    called server-to-server on identity's internal URL, so the issuer prefix is rewritten.

    :raise ConsoleLoginFailed: (503) identity cannot be reached or names another issuer.
    """

    def __init__(self, issuer: str, internal_base: str, timeout: float) -> None:
        self.issuer, self.internal_base, self.timeout = issuer.rstrip("/"), internal_base.rstrip("/"), timeout
        # Server-to-server: timeouts, retries for the idempotent discovery GET, request ids.
        self.client = ServiceClient(self.internal_base, timeout=timeout)
        self._metadata: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def internal_path(self, url: str) -> str:
        """The path of one of identity's public endpoint URLs, to call on its internal base.

        :raise ValueError: the URL is not under the issuer (discovery named a foreign host).
        """
        if not url.startswith(self.issuer + "/"):
            raise ValueError(f"{url} is not an endpoint of {self.issuer}")
        return url[len(self.issuer):]

    def metadata(self, console: str) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                try:
                    response = self.client.get("/.well-known/openid-configuration")
                    response.raise_for_status()
                    document = response.json()
                except (requests.RequestException, ValueError) as exc:
                    log.warning("console_discovery_failed", error=str(exc)[:200])
                    raise ConsoleLoginFailed(console, "console.unavailable", 503) from exc
                if document.get("issuer", "").rstrip("/") != self.issuer:
                    log.error("console_discovery_wrong_issuer", issuer=document.get("issuer"), expected=self.issuer)
                    raise ConsoleLoginFailed(console, "console.unavailable", 503)
                self._metadata = document
            return self._metadata


def _provider() -> Provider:
    app = current_app
    provider = app.extensions.get("xsn_console_provider")
    if provider is None:
        provider = Provider(resolved_settings(app)["issuer"], app.config["SERVICE_URLS"]["identity"],
                            float(app.config.get("HTTP_TIMEOUT", 5.0)))
        app.extensions["xsn_console_provider"] = provider
    return provider


def client_secret(client_id: str) -> str | None:
    """``CONSOLE_CLIENT_SECRET``, or in the embedded setup the demo secret identity's seed wrote."""
    config = current_app.config
    if config.get("CONSOLE_CLIENT_SECRET"):
        return str(config["CONSOLE_CLIENT_SECRET"])
    if config.get("ENV") == "production":
        return None  # fail closed: production configures XSN_CONSOLE_CLIENT_SECRET
    path = Path(config["VAR_DIR"]) / "clients.json"
    try:
        return json.loads(path.read_text())[client_id]["client_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the blueprint ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Console:
    name: str
    client_id: str
    scopes: tuple[str, ...]
    on_success_endpoint: str
    base_template: str | None = None  # the console's page shell for the 403 and sign-in pages


def _safe_next(value: str | None) -> str | None:
    """A path of this site to return to after sign-in, or ``None`` (no open redirects)."""
    if not value or len(value) > 1000 or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(c) < 0x21 for c in value):
        return None
    return value


def _pending(name: str) -> list[str]:
    return list(session.get(COOKIE_PENDING, {}).get(name, []))


def _set_pending(name: str, states: list[str]) -> None:
    pending = dict(session.get(COOKIE_PENDING, {}))
    pending[name] = states[-PENDING_PER_CONSOLE:]
    session[COOKIE_PENDING] = pending


def _purge_expired(db) -> None:
    login_model, session_model = _models()
    now = utcnow()
    db.execute(delete(login_model).where(login_model.expires_at < now))
    db.execute(delete(session_model).where(session_model.expires_at < now))


def make_console_login(name: str, *, client_id: str, scopes: list[str] | tuple[str, ...],
                       on_success_endpoint: str, url_prefix: str | None = None,
                       base_template: str | None = None) -> Blueprint:
    """The sign-in blueprint of one console (``name`` is the blueprint's name).

    Routes under ``url_prefix``: ``login`` (GET or POST; optional ``next`` path), ``callback``
    (the redirect URI registered at identity), ``logout`` (POST, CSRF), ``signed-out``
    (the post-logout redirect URI).
    """
    console = Console(name, client_id, tuple(scopes), on_success_endpoint, base_template)
    bp = protect(Blueprint(name, __name__, url_prefix=url_prefix))
    bp.console = console  # type: ignore[attr-defined]

    @bp.route("/login", methods=["GET", "POST"])
    def login():
        provider = _provider()
        authorization_endpoint = provider.metadata(name)["authorization_endpoint"]
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        login_model, _sessions = _models()
        with get_db().session() as db:
            _purge_expired(db)
            db.add(login_model(state_hash=_digest(state), console=name, nonce=nonce, code_verifier=verifier,
                               next_path=_safe_next(request.values.get("next")),
                               expires_at=utcnow() + PENDING_LIFETIME))
            db.commit()
        _set_pending(name, [*_pending(name), state])
        challenge = create_s256_code_challenge(verifier)
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": _callback_url(name),
                 "scope": " ".join(scopes), "state": state, "nonce": nonce,
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        if request.args.get("lang") in ("zh", "en"):
            query["ui_locales"] = "zh-CN" if request.args["lang"] == "zh" else "en"
        return redirect(f"{authorization_endpoint}?{urlencode(query)}")

    @bp.get("/callback")
    def callback():
        state = request.args.get("state", "")
        pending = _pending(name)
        if not state or state not in pending:
            raise ConsoleLoginFailed(name, "console.failed.state")
        _set_pending(name, [s for s in pending if s != state])  # single use, whatever happens next
        login_model, session_model = _models()
        with get_db().session() as db:
            row = db.get(login_model, _digest(state))
            if row is not None:
                db.delete(row)
                db.commit()
        if row is None or row.console != name or row.expires_at < utcnow():
            raise ConsoleLoginFailed(name, "console.failed.state")
        if "error" in request.args:
            raise ConsoleLoginFailed(name, "console.failed.denied", error=request.args["error"][:64])
        tokens = _exchange(console, request.args.get("code", ""), row.code_verifier)
        id_claims, access_claims = _verify_tokens(console, tokens, row.nonce)
        handle = secrets.token_urlsafe(32)
        with get_db().session() as db:
            db.add(session_model(
                handle_hash=_digest(handle), console=name, subject=str(access_claims["sub"]),
                name=str(id_claims.get("name") or "")[:255] or None, access_token=tokens["access_token"],
                id_token=tokens["id_token"],
                expires_at=datetime.fromtimestamp(access_claims["exp"], tz=utcnow().tzinfo)))
            db.commit()
        session[COOKIE_HANDLES] = {**session.get(COOKIE_HANDLES, {}), name: handle}
        log.info("console_signed_in", console=name, subject=access_claims["sub"],
                 scope=access_claims.get("scope"))
        return redirect(row.next_path or url_for(on_success_endpoint))

    @bp.post("/logout")
    def logout():
        """Ends every console session this browser holds here, then identity's login."""
        _login, session_model = _models()
        handles = dict(session.pop(COOKIE_HANDLES, {}))
        id_token = None
        with get_db().session() as db:
            for console_name, handle in handles.items():
                row = db.get(session_model, _digest(handle))
                if row is not None:
                    if console_name == name or id_token is None:
                        id_token = row.id_token
                    db.delete(row)
            db.commit()
        if id_token is None:
            return redirect(url_for(f"{name}.signed_out"))
        query = {"id_token_hint": id_token, "post_logout_redirect_uri": url_for(f"{name}.signed_out", _external=True)}
        return redirect(f"{_provider().metadata(name)['end_session_endpoint']}?{urlencode(query)}")

    @bp.get("/signed-out")
    def signed_out():
        return _page(name, _("console.signed_out"))

    return bp


def _page(name: str, title: str, message: str | None = None, status: int = 200, *, signed_in: bool = False):
    console = current_app.blueprints[name].console
    return render_template("console/message.html", console=name, title=title, message=message,
                           signed_in=signed_in, base_template=console.base_template), status


def _callback_url(name: str) -> str:
    return url_for(f"{name}.callback", _external=True)


def _exchange(console: Console, code: str, verifier: str) -> dict[str, Any]:
    """The token response for ``code``. :raise ConsoleLoginFailed: identity refused or is unreachable."""
    secret = client_secret(console.client_id)
    if not secret:
        log.error("console_client_secret_missing", client_id=console.client_id)
        raise ConsoleLoginFailed(console.name, "console.failed.exchange", 503)
    provider = _provider()
    try:
        token_path = provider.internal_path(provider.metadata(console.name)["token_endpoint"])
        response = provider.client.post(token_path, auth=(console.client_id, secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": _callback_url(console.name),
            "code_verifier": verifier})
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("console_token_request_failed", error=str(exc)[:200])
        raise ConsoleLoginFailed(console.name, "console.failed.exchange", 502) from exc
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("id_token") \
            or not body.get("access_token"):
        log.warning("console_token_refused", status=response.status_code,
                    error=body.get("error") if isinstance(body, dict) else None)
        raise ConsoleLoginFailed(console.name, "console.failed.exchange", 502)
    return body


def _verify_tokens(console: Console, tokens: dict[str, Any], nonce: str) -> tuple[dict, dict]:
    """Verified (ID token claims, access token claims). :raise ConsoleLoginFailed: any check fails."""
    verifier = get_verifier()
    try:
        header = jws.extract_compact(tokens["id_token"].encode("ascii")).protected
        key = verifier.jwks.get(str(header.get("kid")))
        if key is None or header.get("alg") not in ID_TOKEN_ALGS:
            raise ValueError("unknown key or algorithm")
        claims = jwt.decode(tokens["id_token"], key, algorithms=ID_TOKEN_ALGS).claims
        jwt.JWTClaimsRegistry(
            leeway=verifier.leeway, iss={"essential": True, "value": verifier.issuer},
            aud={"essential": True, "value": console.client_id}, sub={"essential": True},
            exp={"essential": True}, nonce={"essential": True, "value": nonce},
        ).validate(claims)
        if claims.get("azp", console.client_id) != console.client_id:
            raise ValueError("ID token for another party")
        # OIDC Core §3.1.3.6: left half of the access token's hash (SHA-256 for ES256/RS256), base64url.
        at_hash = create_half_hash(tokens["access_token"], header["alg"]).decode()
        if "at_hash" in claims and claims["at_hash"] != at_hash:
            raise ValueError("at_hash does not match the access token")
        access = verifier.verify(tokens["access_token"])
        if access.get("sub") != claims["sub"] or access.get("client_id") != console.client_id:
            raise ValueError("the access token is for someone or something else")
    except (JoseError, ValueError, InvalidToken, KeyError, TypeError, UnicodeError) as exc:
        log.warning("console_token_rejected", console=console.name, error=str(exc)[:200])
        raise ConsoleLoginFailed(console.name, "console.failed.token", 502) from exc
    return claims, access


# -- page views ---------------------------------------------------------------------------------
def current_console_claims(name: str, required_scopes: tuple[str, ...] | list[str] = ()) -> dict[str, Any] | None:
    """The verified access-token claims of the person signed in to console ``name``.

    ``None`` when nobody is (or the token expired or no longer verifies: sign in again).
    Sets ``g.console_user`` (``name``, ``sub``, ``console``) for the page header.

    :raise ConsoleForbidden: signed in, but the token lacks a required scope (403 page).
    """
    handle = session.get(COOKIE_HANDLES, {}).get(name)
    if not handle:
        return None
    _login, session_model = _models()
    with get_db().session() as db:
        row = db.get(session_model, _digest(handle))
        claims = None
        if row is not None and row.console == name:
            try:
                claims = get_verifier().verify(row.access_token)
            except InvalidToken:
                db.delete(row)
                db.commit()
        if claims is None:
            session[COOKIE_HANDLES] = {k: v for k, v in session.get(COOKIE_HANDLES, {}).items() if k != name}
            return None
        g.console_user = {"name": row.name or row.subject, "sub": row.subject, "console": name}
    g.console_claims = claims
    missing = set(required_scopes) - scopes_of(claims)
    if missing:
        raise ConsoleForbidden(name, missing)
    return claims


def login_url(name: str) -> str:
    """The console's sign-in, returning to this page afterwards (GET views only)."""
    here = None
    if request.method == "GET":
        here = (request.script_root + request.full_path).rstrip("?")
    return url_for(f"{name}.login", next=here)


def console_required(name: str, *scopes: str):
    """View decorator: signed in to console ``name`` with ``scopes`` (else sign-in, or 403)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if current_console_claims(name, scopes) is None:
                return redirect(login_url(name))
            return view(*args, **kwargs)

        return wrapper

    return decorator


def init_console_login(app: Flask, login_model, session_model) -> None:
    """Register the service's tables, the texts and the 403 / failure pages."""
    app.extensions["xsn_console_models"] = (login_model, session_model)
    for key, value in SETTINGS.items():
        app.config.setdefault(key, value)
    init_i18n(app, CATALOG)

    @app.errorhandler(ConsoleForbidden)
    def _forbidden(exc: ConsoleForbidden):
        log.info("console_forbidden", console=exc.console, missing=sorted(exc.missing),
                 subject=g.get("console_user", {}).get("sub"))
        return _page(exc.console, _("console.forbidden"),
                     _("console.forbidden_help", scopes=" ".join(sorted(exc.missing))), 403, signed_in=True)

    @app.errorhandler(ConsoleLoginFailed)
    def _failed(exc: ConsoleLoginFailed):
        title = _("console.unavailable") if exc.message_key == "console.unavailable" else _("console.failed")
        return _page(exc.console, title, _(exc.message_key, **exc.params), exc.status)
