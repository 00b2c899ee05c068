"""Server-rendered pages: login (+ TOTP step), registration, account, password reset.

Views parse the form, call the Flask-free domain modules and render; domain problems are
shown as friendly messages from the catalog (``err.<code>``). Every form carries a CSRF token.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import wraps

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, session, url_for

from common.db import get_session
from common.errors import Problem
from common.values.times import local_time
from common.web.i18n import gettext as _
from common.web.pages import protect
from common.web.ratelimit import RateLimited, get_limits
from identity import accounts, organisations, realname, recovery, totp
from identity.config import public_url
from identity.oauth import consents
from identity.oauth.login import current_login, end_login, login_url, safe_next, start_login
from identity.oauth.login_sessions import list_login_sessions, revoke_all_login_sessions, revoke_login_session
from identity.qr import qr_svg

blp = protect(Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                        static_url_path="/static/identity"))

PENDING_KEY = "identity_pending"  # first factor passed, TOTP pending
PENDING_SECONDS = 300
TOTP_ENROL_KEY = "identity_totp_enrol"


def problem_message(exc: Problem) -> str:
    if isinstance(exc, accounts.AccountLocked):
        return _("err.account_locked", until=local_time(exc.locked_until))
    return _(f"err.{exc.code}") if _(f"err.{exc.code}") != f"err.{exc.code}" else _("error.generic")


def field_messages(errors: dict[str, list[str]]) -> dict[str, str]:
    return {field: " ".join(_(f"err.{code}") for code in codes) for field, codes in errors.items()}


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        state = current_login()
        if state is None:
            # script_root: behind the gateway the page lives under /identity.
            here = request.script_root + request.full_path.rstrip("?")
            return redirect(login_url(here if request.method == "GET" else url_for("pages.account")))
        g.person = accounts.get_person(get_session(), state.person_id)
        if g.person is None:
            end_login()
            return redirect(login_url(url_for("pages.account")))
        return view(*args, **kwargs)

    return wrapper


def _to_account(section: str):
    """Back to a section (``#security``, ``#sessions``, ``#apps``) of the account page."""
    return redirect(url_for("pages.account") + f"#{section}")


def _federation_url(next_url: str) -> str | None:
    if current_app.config.get("FEDERATION_UPSTREAM_ISSUER") and "federation.start" in current_app.view_functions:
        return url_for("federation.start", next=next_url)
    return None


def _after_login(person, next_url: str, min_acr: int | None):
    if min_acr and person.assurance_level < min_acr:
        return render_template("identity/step_up.html", required=min_acr, current=person.assurance_level,
                               next_url=next_url)
    return redirect(next_url)


def _min_acr() -> int | None:
    raw = request.values.get("acr", "")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 4 else None


# --- login -------------------------------------------------------------------------------------


@blp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    prompt = request.values.get("prompt", "")
    min_acr = _min_acr()
    context = {"next_url": next_url, "prompt": prompt, "acr": min_acr or "",
               "login": request.values.get("login_hint", ""), "federation_url": _federation_url(next_url)}
    if request.method == "GET":
        state = current_login()
        if state is not None and prompt != "login":
            return _after_login(accounts.get_person(get_session(), state.person_id), next_url, min_acr)
        return render_template("identity/login.html", **context)

    context["login"] = request.form.get("login", "")
    try:
        get_limits().check(f"login-ip:{request.remote_addr}", current_app.config["LOGIN_RATE_LIMIT"])
        person = accounts.authenticate(get_session(), request.form.get("login", ""),
                                       request.form.get("password", ""))
    except RateLimited as exc:
        return render_template("identity/login.html", error=_("err.rate_limited"), **context), 429, \
            {"Retry-After": str(exc.extra.get("retry_after", 60))}
    except (accounts.InvalidCredentials, accounts.AccountLocked) as exc:
        return render_template("identity/login.html", error=problem_message(exc), **context), exc.status
    if person.totp_enabled:
        session[PENDING_KEY] = {"person_id": person.id, "next": next_url, "acr": min_acr, "at": time.time()}
        return redirect(url_for("pages.login_otp"))
    start_login(person, ["pwd"])
    return _after_login(person, next_url, min_acr)


@blp.route("/login/otp", methods=["GET", "POST"])
def login_otp():
    pending = session.get(PENDING_KEY)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        flash(_("login.otp_expired"))
        return redirect(url_for("pages.login"))
    if request.method == "GET":
        return render_template("identity/login_otp.html")
    db = get_session()
    person = accounts.get_person(db, pending["person_id"])
    try:
        get_limits().check(f"login-ip:{request.remote_addr}", current_app.config["LOGIN_RATE_LIMIT"])
        totp.verify_totp(db, person, request.form.get("code", ""))
    except RateLimited:
        return render_template("identity/login_otp.html", error=_("err.rate_limited")), 429
    except accounts.AccountLocked as exc:
        session.pop(PENDING_KEY, None)
        return render_template("identity/login.html", error=problem_message(exc), next_url=pending["next"],
                               prompt="", acr="", login=""), exc.status
    except accounts.InvalidTotp as exc:
        return render_template("identity/login_otp.html", error=problem_message(exc)), exc.status
    start_login(person, ["pwd", "otp"])
    return _after_login(person, pending["next"], pending.get("acr"))


@blp.route("/logout", methods=["POST"])
def logout():
    end_login()
    flash(_("logout.done"))
    return redirect(safe_next(request.form.get("next"), url_for("pages.login")))


# --- registration ------------------------------------------------------------------------------


@blp.route("/register", methods=["GET", "POST"])
def register():
    if request.method == "GET":
        return render_template("identity/register.html", form={}, errors={})
    form = {k: request.form.get(k, "") for k in ("name", "id_number", "mobile", "email")}
    errors: dict[str, str] = {}
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        errors["password2"] = _("err.password_mismatch")
    domain_errors = accounts.person_field_errors(name=form["name"], id_number=form["id_number"],
                                                 mobile=form["mobile"], password=password,
                                                 email=form["email"].strip() or None)
    errors = {**field_messages(domain_errors), **errors}
    for key in ("name", "id_number", "mobile", "password"):
        if not (request.form.get(key) or "").strip():
            errors[key] = _("err.required")
    db = get_session()
    if not errors:
        try:
            person = accounts.register(db, name=form["name"], id_number=form["id_number"], mobile=form["mobile"],
                                       password=password, email=form["email"].strip() or None)
        except accounts.InvalidInput as exc:
            errors = field_messages(exc.errors)
        except accounts.PersonExists as exc:
            errors = {"id_number": problem_message(exc)}
    if errors:
        return render_template("identity/register.html", form=form, errors=errors), 422
    start_login(person, ["pwd"])
    flash(_("register.done"))
    return redirect(url_for("pages.account"))


# --- account -----------------------------------------------------------------------------------


@blp.route("/")
def home():
    return redirect(url_for("pages.account"))


@blp.route("/account")
@login_required
def account():
    db = get_session()
    person = g.person
    return render_template(
        "identity/account.html", person=person,
        id_number=accounts.masked_id_number(db, person), mobile=accounts.masked_mobile(db, person),
        email=accounts.masked_email(db, person),
        orgs=organisations.organisations_of(db, person), grants=organisations.active_grants(db, person),
        sessions=list_login_sessions(db, person), current_session=current_login().session_id,
        apps=consents.list_consents(db, person.id))


@blp.route("/account/email", methods=["POST"])
@login_required
def change_email():
    # The sign-in is enough (no step-up): the address only receives notices, it neither logs in
    # nor resets a password (resets go by SMS to the registered mobile).
    try:
        accounts.update_email(get_session(), g.person, request.form.get("email", "").strip() or None)
    except accounts.InvalidInput as exc:
        flash(" ".join(field_messages(exc.errors).values()))
    else:
        flash(_("account.email_saved"))
    return _to_account("profile")


@blp.route("/account/password", methods=["POST"])
@login_required
def change_password():
    db = get_session()
    new = request.form.get("new_password", "")
    try:
        if new != request.form.get("new_password2", ""):
            raise accounts.InvalidInput({"password": ["password_mismatch"]})
        accounts.change_password(db, g.person, request.form.get("old_password", ""), new)
    except accounts.InvalidInput as exc:
        flash(" ".join(field_messages(exc.errors).values()))
    except (accounts.InvalidCredentials, accounts.AccountLocked) as exc:
        flash(problem_message(exc))
    else:
        flash(_("account.password_changed"))
    return _to_account("security")


@blp.route("/account/totp", methods=["GET", "POST"])
@login_required
def enrol_totp():
    db = get_session()
    secret = session.get(TOTP_ENROL_KEY)
    if request.method == "GET" or not secret:
        secret = totp.new_totp_secret()
        session[TOTP_ENROL_KEY] = secret
        error = None
    else:
        try:
            totp.enable_totp(db, g.person, secret, request.form.get("code", ""))
        except accounts.InvalidTotp as exc:
            error = problem_message(exc)
        else:
            session.pop(TOTP_ENROL_KEY, None)
            flash(_("account.totp_enabled"))
            return _to_account("security")
    uri = totp.totp_uri(db, g.person, secret)
    return render_template("identity/totp.html", secret=secret, uri=uri, qr=qr_svg(uri), error=error), \
        (401 if error else 200)


@blp.route("/account/totp/disable", methods=["POST"])
@login_required
def disable_totp():
    try:
        totp.disable_totp(get_session(), g.person, request.form.get("password", ""))
    except (accounts.InvalidCredentials, accounts.AccountLocked) as exc:
        flash(problem_message(exc))
    else:
        flash(_("account.totp_disabled"))
    return _to_account("security")


@blp.route("/account/realname", methods=["POST"])
@login_required
def verify_realname():
    next_url = safe_next(request.form.get("next"))
    try:
        get_limits().check(f"realname:{g.person.id}", current_app.config["REALNAME_RATE_LIMIT"])
        level = realname.verify_person(get_session(), g.person, current_app.extensions["identity_realname"])
    except (realname.RealNameMismatch, realname.RealNameUnavailable, RateLimited) as exc:
        flash(problem_message(exc))
    else:
        flash(_("account.verified", level=level))
    return redirect(next_url)


@blp.route("/account/sessions/<session_id>/revoke", methods=["POST"])
@login_required
def revoke_session(session_id: str):
    try:
        revoke_login_session(get_session(), g.person, session_id)
        get_session().commit()
    except Problem as exc:
        flash(problem_message(exc))
    else:
        flash(_("account.session_revoked"))
    return _to_account("sessions")


@blp.route("/account/sessions/revoke-others", methods=["POST"])
@login_required
def revoke_other_sessions():
    count = revoke_all_login_sessions(get_session(), g.person, keep=current_login().session_id)
    get_session().commit()
    flash(_("account.sessions_revoked", count=count))
    return _to_account("sessions")


@blp.route("/account/apps/<client_id>/revoke", methods=["POST"])
@login_required
def revoke_app(client_id: str):
    consents.revoke_consent(get_session(), g.person.id, client_id)
    flash(_("account.app_revoked"))
    return _to_account("apps")


# --- password reset ----------------------------------------------------------------------------


@blp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    if request.method == "GET":
        return render_template("identity/forgot.html", form={}, errors={})
    form = {k: request.form.get(k, "") for k in ("id_number", "mobile")}
    config = current_app.config
    try:
        get_limits().check(f"reset-ip:{request.remote_addr}", config["PASSWORD_RESET_RATE_LIMIT"])
        queued = recovery.request_password_reset(
            get_session(), id_number=form["id_number"], mobile=form["mobile"],
            link_for=lambda token: f"{public_url(config)}/password/reset/{token}",
            ttl=timedelta(minutes=float(config["PASSWORD_RESET_MINUTES"])))
    except accounts.InvalidInput as exc:
        return render_template("identity/forgot.html", form=form, errors=field_messages(exc.errors)), 422
    except RateLimited:
        return render_template("identity/forgot.html", form=form, errors={}, error=_("err.rate_limited")), 429
    flash(_("forgot.sent"))
    response = redirect(url_for("pages.login"))
    if queued:
        # Once the answer has gone out: a request that matched a person answers as fast as one
        # that did not (the page must not tell which ID numbers are registered).
        response.call_on_close(current_app.extensions["identity_relay"])
    return response


@blp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    db = get_session()
    try:
        recovery.check_reset_token(db, token)
    except recovery.InvalidResetToken as exc:
        return render_template("identity/message.html", title=_("reset.title"), message=problem_message(exc)), 400
    if request.method == "GET":
        return render_template("identity/reset.html", token=token, errors={})
    new = request.form.get("password", "")
    if new != request.form.get("password2", ""):
        return render_template("identity/reset.html", token=token,
                               errors={"password2": _("err.password_mismatch")}), 422
    try:
        recovery.reset_password(db, token, new)
    except accounts.InvalidInput as exc:
        return render_template("identity/reset.html", token=token, errors=field_messages(exc.errors)), 422
    session.clear()
    flash(_("reset.done"))
    return redirect(url_for("pages.login"))


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)

    @app.context_processor
    def _identity_context():
        return {"logged_in": current_login() is not None}
