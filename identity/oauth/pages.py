"""The OAuth pages a browser sees: the authorization endpoint (login, step-up, consent, then
the code) and RP-initiated logout. Views only translate HTTP: the decisions are
:func:`identity.oauth.authorize.decide` and :func:`identity.oauth.logout.decide_logout`.

Errors before the redirect URI is known to be registered are answered here (400, RFC 6749
§5.2 JSON, or a page for a person); after that they go back to the client's redirect URI
with ``state``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import Blueprint, Flask, make_response, redirect, render_template, request, url_for

from common.crypto.access_tokens import InvalidToken
from common.db import get_session, utcnow
from common.web.i18n import current_language, init_i18n
from common.web.pages import csrf, protect
from identity.oauth import authorize as rules
from identity.oauth import consents
from identity.oauth.context import issuer, state
from identity.oauth.kernel import AuthContext
from identity.oauth.logout import ASK, DECLINED, LogoutRefused, LogoutRequest, decide_logout, revoke_session_tokens
from identity.oauth.models import OAuthClient
from identity.oauth.responses import oauth_error

bp = protect(Blueprint("oauth_pages", __name__))
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


_ERRORS = {rules.LOGIN_REQUIRED: LoginRequiredError, rules.INVALID_REQUEST: InvalidRequestError,
           rules.UNMET_AUTHENTICATION: UnmetAuthenticationRequirements, rules.CONSENT_REQUIRED: ConsentRequiredError}


def _redirect_error(grant, error: str, description: str):
    return _error(_ERRORS[error](description=description, redirect_uri=grant.redirect_uri,
                                state=grant.request.payload.state))


def _return_url(*, forced: bool = False) -> str:
    """This request as a same-origin path (through the gateway prefix) to come back to."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != AFTER]
    if forced:
        args.append((AFTER, str(int(utcnow().timestamp()))))
    return f"{request.script_root}{request.path}?{urlencode(args)}"


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    from identity.accounts import get_person
    from identity.oauth.login import current_login, login_url

    session = get_session()
    login = current_login()
    person = get_person(session, login.person_id) if login else None
    try:
        grant = state().server.get_consent_grant(end_user=person)
    except OAuth2Error as error:
        return _error(error)
    data = grant.request.payload.data
    if not data.get("redirect_uri"):
        return unredirectable(400, "invalid_request", "redirect_uri is required")
    client = grant.client.model
    hint = data.get("login_hint") or None
    req = rules.AuthorizeRequest(
        prompts=frozenset((data.get("prompt") or "").split()),
        requested_scopes=scope_to_list(grant.request.scope or "") or [],
        max_age=data.get("max_age"), acr_values=data.get("acr_values"), login_hint=hint,
        returned_after=request.args.get(AFTER, ""),
        decision=(request.form.get("decision") or "") if request.method == "POST" else None)
    signed_in = rules.SignedIn(login.session_id, login.auth_time, login.amr) if login else None
    decision = rules.decide(session, client=client, person=person, login=signed_in, req=req, now=utcnow())

    if decision.action == rules.LOGIN:
        prompt = "login" if decision.forced else None
        return redirect(login_url(_return_url(forced=decision.forced), prompt=prompt, login_hint=hint,
                                  min_acr=decision.min_acr))
    if decision.action == rules.ERROR:
        return _redirect_error(grant, decision.error, decision.description)
    if decision.action == rules.DENY:
        return state().server.create_authorization_response(grant=grant, grant_user=None)
    if decision.action == rules.CONSENT:
        return render_template("identity/consent.html", client=client, person=person,
                               scopes=consents.describe_scopes(decision.scopes, current_language()),
                               action=_return_url())
    if decision.record_consent:
        consents.record_consent(session, person.id, client.client_id, decision.scopes)
        session.commit()
    grant.request.xsn_scope = " ".join(decision.scopes)
    grant.request.xsn_auth = AuthContext(login.session_id, login.auth_time, person.assurance_level, login.amr)
    return state().server.create_authorization_response(grant=grant, grant_user=person)


def _id_token_hint_claims(hint: str) -> dict | None:
    """Claims of an ID token we issued (expired is fine for a logout hint), else ``None``."""
    try:
        claims = state().introspector.verify_signature(hint)
    except InvalidToken:
        return None
    return claims if claims.get("iss") == issuer() else None


@bp.route("/oauth/logout", methods=["GET", "POST"])
def end_session_endpoint():
    """RP-initiated logout (rules: :mod:`identity.oauth.logout`)."""
    from identity.oauth.login import current_login, end_login

    values = request.values
    hint = values.get("id_token_hint")
    login = current_login()
    req = LogoutRequest(hint_given=bool(hint), hint_claims=_id_token_hint_claims(hint) if hint else None,
                        client_id=values.get("client_id"), target=values.get("post_logout_redirect_uri"),
                        signed_in_person=login.person_id if login else None,
                        confirm=request.form.get("confirm") if request.method == "POST" else None)
    session = get_session()
    try:
        decision = decide_logout(session, req)
    except LogoutRefused as exc:
        return oauth_error(400, "invalid_request", str(exc))
    if decision.action == ASK:
        return render_template("identity/logout_confirm.html", client=decision.client, target=req.target,
                               client_id=decision.client.client_id if decision.client is not None else None,
                               state=values.get("state"))
    if decision.confirmed_by_form:
        csrf.protect()  # 400 problem when the form was not ours
    if decision.action == DECLINED:
        return redirect(url_for("pages.account"))
    if decision.end_login:
        revoke_session_tokens(session, login.session_id)
        session.commit()
        end_login()
    if req.target:
        params = [("state", values["state"])] if values.get("state") else []
        return redirect(add_params_to_uri(req.target, params) if params else req.target)
    return render_template("identity/signed_out.html")


def init_app(app: Flask) -> None:
    init_i18n(app, CATALOG)
    app.register_blueprint(bp)
