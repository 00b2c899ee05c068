"""The authorization endpoint: login, re-login, step-up, consent, then the code.

Authlib validates the request (client, exact redirect URI, response type, scope, PKCE).
What it does not decide is ours: ``prompt``, ``max_age``, ``acr_values`` (the client's
minimum level or the requested one; below it -> step-up, or
``unmet_authentication_requirements`` with ``prompt=none``), ``login_hint``, staff scopes
(granted only when requested, allowed for the client and held by the person), consent.

Errors before the redirect URI is known to be registered are answered here (400, RFC 6749
§5.2 JSON); after that they go back to the client's redirect URI with ``state``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import Blueprint, Flask, make_response, redirect, render_template, request
from sqlalchemy import select

from common.db import get_session, utcnow
from common.web.i18n import current_language, init_i18n
from common.web.pages import protect
from identity import oauth_consents, tokens
from identity.oauth import PERSON_SCOPES, AuthContext, oauth_error, state

bp = protect(Blueprint("oauth_authorize", __name__, template_folder="templates"))
AFTER = "xsn_after"  # marks the return from a forced login: its auth_time must be at least this

CATALOG = {
    "zh": {
        "consent.title": "授权确认",
        "consent.lead": "「{client}」请求获得以下权限：",
        "consent.as": "当前登录：{name}",
        "consent.allow": "同意授权",
        "consent.deny": "拒绝",
        "consent.note": "您可以随时在“我的账户 · 已授权应用”中撤销授权。",
        "logout.title": "您已退出登录",
        "logout.body": "您已从西安统一身份认证平台退出。",
        "autherror.title": "无法继续登录",
        "autherror.client": "发起登录的应用未在西安统一身份认证平台登记，或已被停用。",
        "autherror.redirect": "发起登录的应用提供的回调地址未经登记，为保护您的账户，登录已中止。",
        "autherror.generic": "发起登录的应用发送的请求无效。",
        "autherror.hint": "请返回原应用重试；如果问题持续存在，请联系该应用的提供方。",
        "autherror.detail": "技术信息",
        "autherror.account": "前往我的账户",
        "logout.confirm.title": "退出登录",
        "logout.confirm.body": "是否退出西安统一身份认证平台？",
        "logout.confirm.client": "「{client}」请求您退出西安统一身份认证平台。是否退出？",
        "logout.confirm.yes": "退出登录",
        "logout.confirm.no": "保持登录",
    },
    "en": {
        "consent.title": "Authorise an application",
        "consent.lead": "“{client}” asks for:",
        "consent.as": "Signed in as {name}",
        "consent.allow": "Allow",
        "consent.deny": "Deny",
        "consent.note": "You can revoke this at any time under “My account · Linked apps”.",
        "logout.title": "You have signed out",
        "logout.body": "You have signed out of the Xi'an identity platform.",
        "autherror.title": "Sign-in cannot continue",
        "autherror.client": "The application that sent you here is not registered with the Xi'an identity platform, "
                            "or has been disabled.",
        "autherror.redirect": "The application gave a return address that is not registered; to protect your "
                              "account, sign-in was stopped.",
        "autherror.generic": "The application that sent you here made an invalid request.",
        "autherror.hint": "Go back to the application and try again; if the problem persists, contact its provider.",
        "autherror.detail": "Technical details",
        "autherror.account": "Go to my account",
        "logout.confirm.title": "Sign out",
        "logout.confirm.body": "Do you want to sign out of the Xi'an identity platform?",
        "logout.confirm.client": "“{client}” asks you to sign out of the Xi'an identity platform. Sign out?",
        "logout.confirm.yes": "Sign out",
        "logout.confirm.no": "Stay signed in",
    },
}


class UnmetAuthenticationRequirements(OAuth2Error):
    """OpenID Connect Core errata / RFC 9470: the required ``acr`` cannot be met without interaction."""

    error = "unmet_authentication_requirements"


def prefers_html() -> bool:
    """A browser navigation (Accept ranks text/html above JSON), not an API client or a script."""
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


def unredirectable(status: int, error: str, description: str):
    """An error we must not send to the redirect URI (RFC 6749 §4.1.2.1): the client or the
    redirect URI is not (or no longer) registered. A person in a browser gets a page saying what
    happened; anything else gets the RFC 6749 JSON."""
    if not prefers_html():
        return oauth_error(status, error, description)
    from identity.oauth_models import OAuthClient

    client_id, redirect_uri = request.values.get("client_id"), request.values.get("redirect_uri")
    client = get_session().get(OAuthClient, client_id) if client_id else None
    if client is None or client.disabled_at is not None:
        reason = "autherror.client"
    elif redirect_uri and redirect_uri not in client.redirect_uris:
        reason = "autherror.redirect"
    else:
        reason = "autherror.generic"
    # Only our own words on this page: the request's values (an unregistered URI, a description
    # quoting it) could be an attacker's text shown under our name.
    response = make_response(render_template("identity/authorize_error.html", reason=reason, error=error), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(error: OAuth2Error):
    server = state().server
    if error.redirect_uri:
        return server.handle_error_response(None, error)
    return unredirectable(error.status_code or 400, error.error, error.description or error.error)


def _redirect_error(grant, cls, description: str):
    return _error(cls(description=description, redirect_uri=grant.redirect_uri,
                      state=grant.request.payload.state))


def _return_url(*, forced: bool = False) -> str:
    """This request as a same-origin path (through the gateway prefix) to come back to."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != AFTER]
    if forced:
        args.append((AFTER, str(int(utcnow().timestamp()))))
    return f"{request.script_root}{request.path}?{urlencode(args)}"


def required_level(grant, client) -> int:
    """The client's minimum, raised by the lowest of our levels the request names in ``acr_values``."""
    requested = [tokens.acr_level(v) for v in (grant.request.payload.data.get("acr_values") or "").split()]
    requested = [level for level in requested if level]
    return max(client.min_acr, min(requested) if requested else 1)


def granted_scopes(session, grant, person) -> list[str]:
    """Requested ∩ client's (Authlib did that) ∩, for staff scopes, what the person holds.

    A staff scope is any scope a role can grant (:data:`ROLE_SCOPES`) or a grant holds, whether
    or not anybody holds it today: otherwise a role nobody has been given yet (``seal:admin`` on
    a new node) would be handed to every person who signs in to a client allowed that scope.
    """
    from identity.accounts import staff_scopes
    from identity.models import StaffGrant
    from identity.organisations import ROLE_SCOPES

    requested = scope_to_list(grant.request.scope or "") or []
    every_staff_scope: set[str] = {scope for scopes in ROLE_SCOPES.values() for scope in scopes}
    for scopes in session.scalars(select(StaffGrant.scopes)):
        every_staff_scope.update(scopes.split())
    held = staff_scopes(session, person)
    return [s for s in requested if s in PERSON_SCOPES or s not in every_staff_scope or s in held]


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    from identity.accounts import get_person
    from identity.login import current_login, login_url

    session = get_session()
    login = current_login()
    person = get_person(session, login.person_id) if login else None
    try:
        grant = state().server.get_consent_grant(end_user=person)
    except OAuth2Error as error:
        return _error(error)
    data = grant.request.payload.data
    client = grant.client.model
    prompts = set((data.get("prompt") or "").split())
    hint = data.get("login_hint") or None
    if not data.get("redirect_uri"):
        return unredirectable(400, "invalid_request", "redirect_uri is required")

    if person is None:
        if "none" in prompts:
            return _redirect_error(grant, LoginRequiredError, "No one is logged in.")
        return redirect(login_url(_return_url(), login_hint=hint))

    max_age = data.get("max_age")
    if max_age is not None and (not max_age.isdigit() or len(max_age) > 9):
        return _redirect_error(grant, InvalidRequestError, "max_age must be a non-negative integer")
    after = request.args.get(AFTER, "")
    just_logged_in = after.isdigit() and login.auth_time.timestamp() >= int(after) - 1
    age = (utcnow() - login.auth_time).total_seconds()
    if not just_logged_in and ("login" in prompts or (max_age is not None and age > int(max_age))):
        if "none" in prompts:
            return _redirect_error(grant, LoginRequiredError, "A fresh login is required.")
        return redirect(login_url(_return_url(forced=True), prompt="login", login_hint=hint))

    level = required_level(grant, client)
    if person.assurance_level < level:
        if "none" in prompts:
            return _redirect_error(grant, UnmetAuthenticationRequirements,
                                   f"Assurance level {level} is required.")
        return redirect(login_url(_return_url(), login_hint=hint, min_acr=level))

    scopes = granted_scopes(session, grant, person)
    if not scopes:
        return _redirect_error(grant, InvalidRequestError, "None of the requested scopes can be granted.")
    remembered = oauth_consents.has_consent(session, person.id, client.client_id, scopes)
    needs_consent = not client.skip_consent and ("consent" in prompts or not remembered)

    if request.method == "POST":
        if request.form.get("decision") != "allow":
            return state().server.create_authorization_response(grant=grant, grant_user=None)
        oauth_consents.record_consent(session, person.id, client.client_id, scopes)
        session.commit()
    elif needs_consent:
        if "none" in prompts:
            return _redirect_error(grant, ConsentRequiredError, "The person has not consented yet.")
        return render_template("identity/consent.html", client=client, person=person,
                               scopes=oauth_consents.describe_scopes(scopes, current_language()),
                               action=_return_url())

    grant.request.xsn_scope = " ".join(scopes)
    grant.request.xsn_auth = AuthContext(login.session_id, login.auth_time, person.assurance_level, login.amr)
    return state().server.create_authorization_response(grant=grant, grant_user=person)


def init_app(app: Flask) -> None:
    init_i18n(app, CATALOG)
    app.register_blueprint(bp)
