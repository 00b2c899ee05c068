"""The holder's pages (我的证照): their licences, a licence's face, uses and authorisations,
authorising a use (授权用证) and revoking it.

Sign-in: the person signs in with their identity account (OpenID Connect through the gateway,
:mod:`common.web.console_login`, client ``xsn-licenses-holder``); the access token must carry
``licenses:holder`` and is re-verified on every view. Who the person holds for is found as the
API finds it (:func:`licenses.holder_api.resolve_holder`: identity's userinfo with the person's
own token, so the token carries ``idcard:full org`` too). The views read and change licences
and authorisations only through :mod:`licenses.authorisations`; whatever fails in them is shown
as an error page in the person's language (:func:`common.web.pages.html_errors`). Forms carry
CSRF tokens; no JavaScript is needed.

An authorisation's code is a bearer secret (whoever has it is served at the window it names),
so no URL carries it: its QR page is found by the authorisation's id, for the signed-in
holder only, and the code drawn server-side (``/show?code=...`` put it in access logs,
browser history and ``Referer``). Pages answer ``Cache-Control: no-store``: they hold live
codes and unmasked personal data, which a shared computer's cache must not keep.
"""

from __future__ import annotations

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, url_for

from common.db import get_session, utcnow
from common.errors import ValidationFailed
from common.web.console_login import console_required, make_console_login
from common.web.i18n import _, current_language
from common.web.pages import html_errors, not_stored, protect

from . import authorisations, holder_api
from .holders import Holder
from .models import LicenceType
from .pages import field_labels, qr_data_uri

HOLDER_SCOPE = "licenses:holder"
CONSOLE = "licenses_holder_login"
# A problem's code -> what the error page tells the person (licenses/i18n.py); others: error.generic.
PROBLEM_TEXTS = {code: f"holder.problem.{code}" for code in (
    "licence_not_found", "authorisation_not_found", "not_a_holder", "identity_unavailable")}
# Every holder page shows a person's licences or a live code: kept by no cache.
bp = not_stored(html_errors(protect(Blueprint("holder_pages", __name__, url_prefix="/me", template_folder="templates")),
                            back="holder_pages.licences", back_text="holder.back", texts=PROBLEM_TEXTS))
holder_required = console_required(CONSOLE, HOLDER_SCOPE)
# The form's defaults: one use within ten minutes, as at a window.
DEFAULT_MINUTES, DEFAULT_USES = 10, 1


def _holder() -> Holder:
    return holder_api.resolve_holder(str(g.console_claims["sub"]), g.console_access_token)


def _who(sub: str | None, name: str | None) -> str:
    """Who granted or revoked, as the page says it: the name identity gave (the subject for
    rows from before names were kept), marked when it is the signed-in person."""
    if not sub:
        return ""
    label = name or sub
    return _("holder.me", name=label) if sub == str(g.console_claims["sub"]) else label


def _type_name(licence_type: LicenceType) -> str:
    return licence_type.name_en if current_language() == "en" and licence_type.name_en else licence_type.name


def _field_labels(licence_type: LicenceType) -> list[tuple[str, str]]:
    """``(name, label)`` of the type's face fields in the catalogue's order and the page's language."""
    return list(field_labels(licence_type.code).items())


@bp.route("/")  # /me/ too: people type either
@bp.route("")
@bp.route("/licences")
@holder_required
def licences():
    session = get_session()
    rows = authorisations.holders_licences(session, holder_api.deps(), _holder())
    types = {row.type_code: session.get(LicenceType, row.type_code) for row in rows}
    return render_template("licenses/holder/licences.html", licences=rows,
                           type_names={code: _type_name(t) for code, t in types.items()},
                           usable={row.id for row in rows if authorisations.usable(row)})


@bp.route("/licences/<licence_id>")
@holder_required
def licence(licence_id: str):
    session = get_session()
    row = authorisations.holders_licence(session, holder_api.deps(), _holder(), licence_id)
    licence_type = session.get(LicenceType, row.type_code)
    now = utcnow()
    granted = authorisations.list_for(session, row.id)
    return render_template("licenses/holder/licence.html", licence=row, view=holder_api.own_licence_view(row),
                           type_name=_type_name(licence_type), labels=_field_labels(licence_type),
                           uses=authorisations.use_records(session, row.id), granted=granted,
                           states={a.id: authorisations.state_of(a, now) for a in granted},
                           usable=authorisations.usable(row), who=_who)


@bp.route("/licences/<licence_id>/document")
@holder_required
def document(licence_id: str):
    return holder_api.document_download(
        authorisations.holders_licence(get_session(), holder_api.deps(), _holder(), licence_id))


@bp.route("/licences/<licence_id>/signature")
@holder_required
def signature(licence_id: str):
    return holder_api.signature_download(
        authorisations.holders_licence(get_session(), holder_api.deps(), _holder(), licence_id))


def _whole_number(raw: str | None) -> int:
    """What was typed as a whole number; 0 (out of every allowed range, so the domain names
    the field and its bounds) for anything else."""
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0


def _form_errors(errors: dict[str, list[str]], fields_chosen: bool) -> dict[str, str]:
    """The domain's field errors (:func:`licenses.authorisations.create`) said in the page's
    language: ``fields`` is refused when none is chosen, or when a chosen one is not the type's."""
    limits = holder_api.limits()
    texts = {"fields": _("authorise.error.fields_unknown") if fields_chosen else _("authorise.error.fields"),
             "minutes": _("authorise.error.minutes", low=limits.min_minutes, high=limits.max_minutes),
             "max_uses": _("authorise.error.max_uses", high=limits.max_uses),
             "purpose": _("authorise.error.purpose"), "audience": _("authorise.error.audience")}
    return {name: texts.get(name, "; ".join(messages)) for name, messages in errors.items()}


@bp.route("/licences/<licence_id>/authorise", methods=["GET", "POST"])
@holder_required
def authorise(licence_id: str):
    session = get_session()
    person = _holder()
    row = authorisations.holders_licence(session, holder_api.deps(), person, licence_id)
    licence_type = session.get(LicenceType, row.type_code)
    form = {"fields": request.form.getlist("fields"), "purpose": request.form.get("purpose", ""),
            "audience": request.form.get("audience", ""),
            "minutes": request.form.get("minutes", str(DEFAULT_MINUTES)),
            "max_uses": request.form.get("max_uses", str(DEFAULT_USES))}
    errors: dict[str, str] = {}
    refusal = None
    status = 200
    if request.method == "POST":
        try:
            auth = authorisations.create(
                session, holder_api.deps(), person, row.id, fields=form["fields"], purpose=form["purpose"],
                audience=form["audience"], minutes=_whole_number(form["minutes"]),
                max_uses=_whole_number(form["max_uses"]), limits=holder_api.limits())
        except ValidationFailed as exc:
            errors = _form_errors(exc.extra.get("errors", {}), bool(form["fields"]))
            status = 400
        except authorisations.LicenceNotUsable:
            refusal, status = _("authorise.error.not_usable"), 409
        else:
            flash(_("authorise.done"))
            return redirect(url_for("holder_pages.authorisation", authorisation_id=auth.id))
    return render_template("licenses/holder/authorise.html", licence=row, type_name=_type_name(licence_type),
                           labels=_field_labels(licence_type), form=form, errors=errors, refusal=refusal,
                           limits=holder_api.limits()), status


@bp.route("/authorisations/<authorisation_id>")
@holder_required
def authorisation(authorisation_id: str):
    session = get_session()
    person = _holder()
    auth = authorisations.get_own(session, holder_api.deps(), person, authorisation_id)
    row = authorisations.holders_licence(session, holder_api.deps(), person, auth.licence_id)
    licence_type = session.get(LicenceType, row.type_code)
    return render_template("licenses/holder/authorisation.html", auth=auth, licence=row,
                           type_name=_type_name(licence_type),
                           field_names=[label for name, label in _field_labels(licence_type) if name in auth.fields],
                           state=authorisations.state_of(auth, utcnow()), who=_who)


@bp.route("/authorisations/<authorisation_id>/qr")
@holder_required
def show(authorisation_id: str):
    """The code's QR for the window to scan (出示二维码), while the authorisation can be used."""
    auth = authorisations.get_own(get_session(), holder_api.deps(), _holder(), authorisation_id)
    state = authorisations.state_of(auth, utcnow())
    return render_template("licenses/holder/show.html", auth=auth, state=state,
                           qr=qr_data_uri(auth.code) if state == "active" else None)


@bp.route("/authorisations/<authorisation_id>/revoke", methods=["POST"])
@holder_required
def revoke(authorisation_id: str):
    auth = authorisations.revoke(get_session(), holder_api.deps(), _holder(), authorisation_id)
    flash(_("authorisation.revoked_done", code=auth.code))
    return redirect(url_for("holder_pages.licence", licence_id=auth.licence_id))


def init_app(app: Flask) -> None:
    login_bp = make_console_login(CONSOLE, client_id=app.config["LICENSES_HOLDER_CLIENT_ID"],
                                  scopes=("openid", "profile", "idcard:full", "org", HOLDER_SCOPE),
                                  on_success_endpoint="holder_pages.licences", url_prefix="/me",
                                  base_template="licenses/holder/layout.html")
    app.register_blueprint(login_bp)
    app.register_blueprint(bp)
