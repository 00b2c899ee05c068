"""Seal-management pages (印章管理) for an organisation's staff: seals, pictures, status, usage.

Sign-in: staff sign in with their identity account (OpenID Connect through the gateway,
:mod:`common.web.console_login`); the console's access token must carry ``seal:admin`` and is
re-verified on every page view, so an expired token means signing in again (silent while
the identity login lasts) and a person without the role gets a 403 page. The views read and
change data only through the domain modules (:mod:`seal.seals`, :mod:`seal.grants`). Forms
carry CSRF tokens; the pages work without JavaScript. Whatever fails in a view (an unknown seal,
an expired form, a bug) answers an error page (:func:`common.web.pages.html_errors`).
"""

from __future__ import annotations

import functools
from datetime import datetime

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for

from common.db import get_session, utcnow
from common.errors import Problem
from common.web.console_login import console_required, make_console_login
from common.web.i18n import _
from common.web.pages import html_errors, protect
from seal import grants, seals
from seal.config import CONSOLE_CLIENT_ID
from seal.models import SEAL_STATUSES

ADMIN_SCOPE = "seal:admin"
CONSOLE = "seal_manage_login"
bp = html_errors(protect(Blueprint("seal_pages", __name__, url_prefix="/manage", template_folder="templates")),
                 back="seal_pages.index", back_text="seal.back",
                 texts={"seal_not_found": "seal.error.not_found", "csrf_failed": "seal.error.csrf_failed"})
login_bp = make_console_login(CONSOLE, client_id=CONSOLE_CLIENT_ID, scopes=("openid", "profile", ADMIN_SCOPE),
                              on_success_endpoint="seal_pages.index", url_prefix="/manage",
                              base_template="seal/manage_base.html")
admin_required = console_required(CONSOLE, ADMIN_SCOPE)



def _expired(seal, now: datetime) -> bool:
    return not seal.valid_start <= now <= seal.valid_end


@bp.route("/")  # /manage/ too: people type either (the inner rule, "", is what url_for builds)
@bp.route("")
@admin_required
def index():
    db = get_session()
    org_code = request.args.get("org_code", "").strip() or None
    status = request.args.get("status", "").strip()
    status = status if status in SEAL_STATUSES else ""
    found = seals.list_seals(db, org_code=org_code, status=status or None)
    counts = seals.usage_counts(db, [s.id for s in found])
    return render_template("seal/index.html", seals=found, counts=counts, org_code=org_code or "",
                           status=status, statuses=SEAL_STATUSES,
                           expired=functools.partial(_expired, now=utcnow()))


@bp.route("/seals/<seal_id>")
@admin_required
def detail(seal_id: str):
    db = get_session()
    seal = seals.get_seal(db, seal_id)
    return render_template("seal/detail.html", seal=seal, usage=seals.usage_counts(db, [seal.id])[seal.id],
                           events=seals.history(db, seal.id), grants=grants.list_grants(db, seal.id),
                           expired=_expired(seal, utcnow()))


# Problems a staff member can cause from the forms, said in their language.
_FORM_ERRORS = {
    "reason_required": "seal.error.reason_required",
    "seal_status_conflict": "seal.error.status_conflict",
    "invalid_action": "seal.error.invalid_action",
    "seal_not_found": "seal.error.not_found",
}


@bp.route("/seals/<seal_id>/status", methods=["POST"])
@admin_required
def change_status(seal_id: str):
    claims = g.console_claims
    action = request.form.get("action", "")
    if action == "revoke" and request.form.get("confirm") != "yes":
        flash(_("seal.error", detail=_("seal.error.confirm_revoke")))
        return redirect(url_for("seal_pages.detail", seal_id=seal_id))
    try:
        seals.change_status(get_session(), seal_id, action, reason=request.form.get("reason"),
                              actor=str(claims.get("sub")))
        flash(_(f"seal.changed.{action}"))
    except Problem as exc:
        get_session().rollback()
        detail = _(_FORM_ERRORS[exc.code]) if exc.code in _FORM_ERRORS else exc.detail
        flash(_("seal.error", detail=detail))
    return redirect(url_for("seal_pages.detail", seal_id=seal_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(login_bp)
