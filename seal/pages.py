"""Seal-management pages (印章管理) for an organisation's staff: seals, pictures, status, usage.

Sign-in: the staff member presents an access token with scope ``seal:admin`` issued by the
identity node (pasted into the sign-in form, kept in the signed session cookie and
re-verified on every page view, so an expired token signs them out). This is the same
mechanism as the auditor console; a browser OIDC login through identity can replace the
form later without touching the views, which read and change data only through
:mod:`seal.service`. Forms carry CSRF tokens; the pages work without JavaScript.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for

from common.auth import InvalidToken, get_verifier, scopes_of
from common.db import get_session, utcnow
from common.errors import Problem
from common.i18n import _
from common.pages import protect

from . import service
from .models import SEAL_STATUSES

bp = protect(Blueprint("seal_pages", __name__, url_prefix="/manage", template_folder="templates"))
TOKEN_KEY = "seal_admin_token"  # noqa: S105 - a session key name
ADMIN_SCOPE = "seal:admin"
CHINA = timezone(timedelta(hours=8), "CST")


def local_time(value) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else ""


def _admin() -> dict | None:
    """The signed-in administrator's verified claims (also in ``g.seal_admin``), or ``None``."""
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
    g.seal_admin = claims
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
    elif _admin() is not None:
        return redirect(url_for("seal_pages.index"))
    return render_template("seal/login.html", error=error), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout():
    session.pop(TOKEN_KEY, None)
    return redirect(url_for("seal_pages.login"))


def _expired(seal, now: datetime) -> bool:
    return not seal.valid_start <= now <= seal.valid_end


@bp.route("")
def index():
    if _admin() is None:
        return redirect(url_for("seal_pages.login"))
    db = get_session()
    org_code = request.args.get("org_code", "").strip() or None
    status = request.args.get("status", "").strip()
    status = status if status in SEAL_STATUSES else ""
    seals = service.list_seals(db, org_code=org_code, status=status or None)
    counts = service.usage_counts(db, [s.id for s in seals])
    return render_template("seal/index.html", seals=seals, counts=counts, org_code=org_code or "",
                           status=status, statuses=SEAL_STATUSES, local_time=local_time,
                           expired=functools.partial(_expired, now=utcnow()))


@bp.route("/seals/<seal_id>")
def detail(seal_id: str):
    if _admin() is None:
        return redirect(url_for("seal_pages.login"))
    db = get_session()
    seal = service.get_seal(db, seal_id)
    return render_template("seal/detail.html", seal=seal, usage=service.usage_counts(db, [seal.id])[seal.id],
                           events=service.history(db, seal.id), grants=service.list_grants(db, seal.id),
                           local_time=local_time, expired=_expired(seal, utcnow()))


# Problems a staff member can cause from the forms, said in their language.
_FORM_ERRORS = {
    "reason_required": "seal.error.reason_required",
    "seal_status_conflict": "seal.error.status_conflict",
    "invalid_action": "seal.error.invalid_action",
    "seal_not_found": "seal.error.not_found",
}


@bp.route("/seals/<seal_id>/status", methods=["POST"])
def change_status(seal_id: str):
    claims = _admin()
    if claims is None:
        return redirect(url_for("seal_pages.login"))
    action = request.form.get("action", "")
    if action == "revoke" and request.form.get("confirm") != "yes":
        flash(_("seal.error", detail=_("seal.error.confirm_revoke")))
        return redirect(url_for("seal_pages.detail", seal_id=seal_id))
    try:
        service.change_status(get_session(), seal_id, action, reason=request.form.get("reason"),
                              actor=str(claims.get("sub")))
        flash(_(f"seal.changed.{action}"))
    except Problem as exc:
        get_session().rollback()
        detail = _(_FORM_ERRORS[exc.code]) if exc.code in _FORM_ERRORS else exc.detail
        flash(_("seal.error", detail=detail))
    return redirect(url_for("seal_pages.detail", seal_id=seal_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
