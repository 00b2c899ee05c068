"""Who is logged in to this browser: the signed cookie names a server-side LoginSession.

Used by the pages and by the OAuth endpoints (``/authorize`` sends the browser to
:func:`login_url` when it needs a login, a re-login or a step-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, g, request, session, url_for

from common.db import get_session
from identity.models import LoginSession, Person
from identity.oauth.login_sessions import (
    active_login_session,
    create_login_session,
    end_login_session,
    touch_login_session,
)

COOKIE_KEY = "identity_sid"


@dataclass(frozen=True)
class LoginState:
    session_id: str
    person_id: str
    auth_time: datetime  # aware UTC
    acr: int  # assurance level (可信等级) at login time
    amr: list[str]  # e.g. ["pwd"], ["pwd", "otp"], ["fed"]


def _state(row: LoginSession) -> LoginState:
    return LoginState(session_id=row.id, person_id=row.person_id, auth_time=row.auth_time,
                      acr=row.acr, amr=row.amr.split())


def current_login() -> LoginState | None:
    """The browser's valid, unrevoked login, or None (cached for the request)."""
    if "identity_login" not in g:
        db = get_session()
        row = active_login_session(db, session.get(COOKIE_KEY))
        if row is None and COOKIE_KEY in session:
            session.pop(COOKIE_KEY)
        if row is not None and touch_login_session(row):
            db.commit()
        g.identity_login = _state(row) if row is not None else None
    return g.identity_login


def start_login(person: Person, amr: list[str]) -> LoginState:
    """Create the LoginSession row (committed) and point the browser's cookie at it."""
    lifetime = timedelta(hours=float(current_app.config["LOGIN_SESSION_HOURS"]))
    db = get_session()
    row = create_login_session(db, person, amr=amr, lifetime=lifetime,
                               ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))
    db.commit()
    session.clear()  # a fresh cookie at login: nothing carried over from before (fixation)
    session[COOKIE_KEY] = row.id
    session.permanent = True
    g.identity_login = _state(row)
    return g.identity_login


def end_login() -> None:
    """Revoke the current login (if any) and clear the cookie."""
    state = current_login()
    if state is not None:
        db = get_session()
        row = db.get(LoginSession, state.session_id)
        if row is not None:
            end_login_session(db, row)
            db.commit()
    session.clear()
    g.identity_login = None


def is_safe_next(next_url: str | None) -> bool:
    """Only same-origin relative paths: no scheme, no host, no ``//`` or ``/\\`` tricks."""
    if not next_url or not isinstance(next_url, str) or len(next_url) > 4096:
        return False
    if any(ord(c) < 0x21 or c == "\\" for c in next_url):
        return False
    if not next_url.startswith("/") or next_url.startswith("//"):
        return False
    parts = urlsplit(next_url)
    return not parts.scheme and not parts.netloc


def safe_next(next_url: str | None, default: str | None = None) -> str:
    return next_url if is_safe_next(next_url) else (default or url_for("pages.account"))


def login_url(next_url: str, *, prompt: str | None = None, login_hint: str | None = None,
              min_acr: int | None = None) -> str:
    """The login page, returning to ``next_url`` afterwards.

    ``prompt="login"`` forces a fresh login even with a valid session (also used for
    ``max_age``); ``min_acr`` asks for a step-up when the person's level is lower.
    """
    args: dict[str, str | int] = {"next": next_url}
    if prompt:
        args["prompt"] = prompt
    if login_hint:
        args["login_hint"] = login_hint
    if min_acr:
        args["acr"] = int(min_acr)
    return url_for("pages.login", **args)
