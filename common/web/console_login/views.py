"""The sign-in blueprint of a staff console, and what page views use to require it.

:func:`make_console_login` builds one console's blueprint: ``login`` starts the flow (state,
nonce, PKCE verifier kept server-side), ``callback`` checks the state (single use) and hands
the code to :mod:`common.web.console_login.flow`, then keeps the tokens server-side (encrypted
under the service's KEK, :func:`~common.web.console_login.models.seal_tokens`) with a random
handle in the cookie; ``logout`` ends the console sessions and identity's login
(RP-initiated logout). Page views call :func:`current_console_claims` (or use
:func:`console_required`): the access token is verified again on every view (fail closed)
and its scopes checked; a person signed in without the scopes gets a 403 page, never a
redirect loop.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

import structlog
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for

from common.crypto.keystore import load_kek
from common.crypto.pii import PiiCipher
from common.db import get_db, utcnow
from common.web.auth import InvalidToken, get_verifier, scopes_of
from common.web.console_login import flow
from common.web.console_login.flow import Console, ConsoleForbidden, ConsoleLoginFailed
from common.web.console_login.models import digest, open_token, purge_expired, seal_tokens, token_cipher
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

CATALOG = {
    "zh": {
        "console.signed_in_as": "已登录：",
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


def _models(app: Flask | None = None):
    return (app or current_app).extensions["xsn_console_models"]


def tokens_cipher(app: Flask | None = None) -> PiiCipher:
    """The cipher the app's console tokens are stored under (:func:`init_console_login` made it)."""
    return (app or current_app).extensions["xsn_console_tokens"]


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
        extra = {}
        if request.args.get("lang") in ("zh", "en"):
            extra["ui_locales"] = "zh-CN" if request.args["lang"] == "zh" else "en"
        started = flow.start(console, _callback_url(name), **extra)
        login_model, session_model = _models()
        with get_db().session() as db:
            purge_expired(db, login_model, session_model)
            db.add(login_model(state_hash=digest(started.state), console=name, nonce=started.nonce,
                               code_verifier=started.code_verifier, next_path=_safe_next(request.values.get("next")),
                               expires_at=utcnow() + PENDING_LIFETIME))
            db.commit()
        _set_pending(name, [*_pending(name), started.state])
        return redirect(started.url)

    @bp.get("/callback")
    def callback():
        state = request.args.get("state", "")
        pending = _pending(name)
        if not state or state not in pending:
            raise ConsoleLoginFailed(name, "console.failed.state")
        _set_pending(name, [s for s in pending if s != state])  # single use, whatever happens next
        login_model, session_model = _models()
        with get_db().session() as db:
            row = db.get(login_model, digest(state))
            if row is not None:
                db.delete(row)
                db.commit()
        if row is None or row.console != name or row.expires_at < utcnow():
            raise ConsoleLoginFailed(name, "console.failed.state")
        if "error" in request.args:
            raise ConsoleLoginFailed(name, "console.failed.denied", error=request.args["error"][:64])
        tokens = flow.exchange(console, request.args.get("code", ""), row.code_verifier, _callback_url(name))
        id_claims, access_claims = flow.verify_tokens(console, tokens, row.nonce)
        handle = secrets.token_urlsafe(32)
        sealed = seal_tokens(tokens_cipher(), digest(handle), access_token=tokens["access_token"],
                             id_token=tokens["id_token"])
        with get_db().session() as db:
            db.add(session_model(
                handle_hash=digest(handle), console=name, subject=str(access_claims["sub"]),
                name=str(id_claims.get("name") or "")[:255] or None, **sealed,
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
                row = db.get(session_model, digest(handle))
                if row is not None:
                    if console_name == name or id_token is None:
                        # A row that does not open (written before encryption) still ends here;
                        # only identity's login is then left to the person.
                        id_token = open_token(tokens_cipher(), row, "id_token") or id_token
                    db.delete(row)
            db.commit()
        if id_token is None:
            return redirect(url_for(f"{name}.signed_out"))
        return redirect(flow.end_session_url(console, id_token, url_for(f"{name}.signed_out", _external=True)))

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


# -- page views ---------------------------------------------------------------------------------
def _verified(token: str | None) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        return get_verifier().verify(token)
    except InvalidToken:
        return None


def current_console_claims(name: str, required_scopes: tuple[str, ...] | list[str] = ()) -> dict[str, Any] | None:
    """The verified access-token claims of the person signed in to console ``name``.

    ``None`` when nobody is (or the token expired, no longer verifies or does not decrypt:
    sign in again).
    Sets ``g.console_user`` (``name``, ``sub``, ``console``) for the page header, and
    ``g.console_access_token`` (the verified token) for views that act as the person.

    :raise ConsoleForbidden: signed in, but the token lacks a required scope (403 page).
    """
    handle = session.get(COOKIE_HANDLES, {}).get(name)
    if not handle:
        return None
    _login, session_model = _models()
    with get_db().session() as db:
        row = db.get(session_model, digest(handle))
        claims = token = None
        if row is not None and row.console == name:
            token = open_token(tokens_cipher(), row, "access_token")
            claims = _verified(token)
            if claims is None:  # expired, altered, or a row that does not decrypt (older than its encryption)
                db.delete(row)
                db.commit()
        if claims is None:
            session[COOKIE_HANDLES] = {k: v for k, v in session.get(COOKIE_HANDLES, {}).items() if k != name}
            return None
        g.console_user = {"name": row.name or row.subject, "sub": row.subject, "console": name}
        # The token itself, for a page that calls a peer as the person (the licences node asks
        # identity's userinfo who the holder is with it).
        g.console_access_token = token
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
    # Built at start: a production service without its KEK fails here, not at the first sign-in.
    app.extensions["xsn_console_tokens"] = token_cipher(load_kek(app.config), app.config["SERVICE_NAME"])
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
