"""Seal-management pages (印章管理) for an organisation's staff: seals, pictures, status, usage.

Sign-in: the staff member presents an access token with scope ``seal:admin`` issued by the
identity node (pasted into the sign-in form, kept in the signed session cookie and
re-verified on every page view, so an expired token signs them out). This is the same
mechanism as the auditor console; a browser OIDC login through identity can replace the
form later without touching the views, which read and change data only through
:mod:`seal.service`. Forms carry CSRF tokens; the pages work without JavaScript.
"""

from __future__ import annotations

from datetime import timedelta, timezone

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for

from common.auth import InvalidToken, get_verifier, scopes_of
from common.db import get_session
from common.errors import Problem
from common.i18n import _
from common.pages import protect

from . import service

bp = protect(Blueprint("seal_pages", __name__, url_prefix="/manage", template_folder="templates"))
TOKEN_KEY = "seal_admin_token"  # noqa: S105 - a session key name
ADMIN_SCOPE = "seal:admin"
CHINA = timezone(timedelta(hours=8), "CST")


def local_time(value) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else ""


def _admin() -> dict | None:
    token = session.get(TOKEN_KEY)
    if not token:
        return None
    try:
        claims = get_verifier().verify(token)
    except InvalidToken:
        session.pop(TOKEN_KEY, None)
        return None
    if ADMIN_SCOPE not in scopes_of(claims):
        session.pop(TOKEN_KEY, None)
        return None
    return claims


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        try:
            claims = get_verifier().verify(token)
        except InvalidToken:
            error = _("seal.bad_token")
        else:
            if ADMIN_SCOPE in scopes_of(claims):
                session[TOKEN_KEY] = token
                return redirect(url_for("seal_pages.index"))
            error = _("seal.no_scope")
    return render_template("seal/login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout():
    session.pop(TOKEN_KEY, None)
    return redirect(url_for("seal_pages.login"))


@bp.route("")
def index():
    if _admin() is None:
        return redirect(url_for("seal_pages.login"))
    db = get_session()
    org_code = request.args.get("org_code", "").strip() or None
    seals = service.list_seals(db, org_code=org_code)
    counts = service.usage_counts(db, [s.id for s in seals])
    return render_template("seal/index.html", seals=seals, counts=counts, org_code=org_code or "",
                           local_time=local_time)


@bp.route("/seals/<seal_id>")
def detail(seal_id: str):
    if _admin() is None:
        return redirect(url_for("seal_pages.login"))
    db = get_session()
    seal = service.get_seal(db, seal_id)
    return render_template("seal/detail.html", seal=seal, usage=service.usage_counts(db, [seal.id])[seal.id],
                           events=service.history(db, seal.id), grants=service.list_grants(db, seal.id),
                           local_time=local_time)


@bp.route("/seals/<seal_id>/status", methods=["POST"])
def change_status(seal_id: str):
    claims = _admin()
    if claims is None:
        return redirect(url_for("seal_pages.login"))
    try:
        service.change_status(get_session(), seal_id, request.form.get("action", ""),
                              reason=request.form.get("reason"), actor=str(claims.get("sub")))
        flash(_("seal.changed"))
    except Problem as exc:
        get_session().rollback()
        flash(_("seal.error", detail=exc.detail))
    return redirect(url_for("seal_pages.detail", seal_id=seal_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
