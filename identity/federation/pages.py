"""The browser side of federation: ``/federation/start`` and ``/federation/callback``.

Views only: the rules are in :mod:`identity.federation.upstream`.
"""

from __future__ import annotations

import secrets

import structlog
from flask import Blueprint, Flask, abort, current_app, redirect, render_template_string, request, session

from common.db import get_session
from common.http import ServiceClient
from common.oidc_client import Client, OpenIDProvider
from identity.federation.upstream import (
    FederationError,
    begin_login,
    claim_pending,
    exchange_code,
    link_person,
)
from identity.oauth.context import issuer

logger = structlog.get_logger("xsn.identity.federation.pages")
bp = Blueprint("federation", __name__, url_prefix="/federation")
PENDING_KEY = "identity_federation"


def provider() -> OpenIDProvider:
    """The upstream provider (discovery and keys cached), one per app and configured issuer."""
    config = current_app.config
    issuer_url = str(config["FEDERATION_UPSTREAM_ISSUER"]).rstrip("/")
    cached = current_app.extensions.get("identity_federation")
    if cached is None or cached.issuer != issuer_url:
        http = ServiceClient.from_config(issuer_url, config, timeout=float(config["FEDERATION_TIMEOUT"]))
        cached = OpenIDProvider(issuer_url, http=http)
        current_app.extensions["identity_federation"] = cached
    return cached


def callback_url() -> str:
    return f"{issuer()}/federation/callback"


def settings() -> Client:
    """This node as registered at the upstream."""
    config = current_app.config
    return Client(config["FEDERATION_CLIENT_ID"], callback_url(), config["FEDERATION_SCOPE"],
                  client_secret=config["FEDERATION_CLIENT_SECRET"] or None)


@bp.get("/start")
def start():
    """Begin a login at the upstream: the verifier and nonce stay in ``federation_pending``;
    the cookie holds only the ``state`` (which the browser sees in the URL anyway), binding the
    callback to the browser that started it."""
    from identity.oauth.login import safe_next

    config = current_app.config
    if not config.get("FEDERATION_UPSTREAM_ISSUER") or not config.get("FEDERATION_CLIENT_ID"):
        abort(404)
    db = get_session()
    state, url = begin_login(db, provider(), settings(), safe_next(request.args.get("next")))
    db.commit()
    session[PENDING_KEY] = state
    return redirect(url)


FAILED_PAGE = """{% extends "identity/layout.html" %}{% block content %}
<section class="card narrow"><h1>{{ title }}</h1><p class="alert">{{ detail }}</p>
<a class="button" href="{{ url_for('pages.login') }}">{{ back }}</a></section>{% endblock %}"""


def _failed(detail: str, status: int = 400):
    from common.web.i18n import current_language

    en = current_language() == "en"
    return render_template_string(FAILED_PAGE, title="Provincial login failed" if en else "省级账号登录失败",
                                  detail=detail, back="Back to login" if en else "返回登录"), status


@bp.get("/callback")
def callback():
    from identity.oauth.login import start_login

    expected = session.pop(PENDING_KEY, None)
    state = request.args.get("state", "")
    if not isinstance(expected, str) or not expected:
        return _failed("no federation login in progress (or it expired)")
    if not secrets.compare_digest(state, expected):
        return _failed("state mismatch")
    pending = claim_pending(get_session(), state)
    if pending is None:
        return _failed("no federation login in progress (or it expired)")
    if request.args.get("error"):
        return _failed(f"upstream: {request.args['error']}")
    code = request.args.get("code")
    if not code:
        return _failed("no code")
    upstream = provider()
    db = get_session()
    try:
        claims = exchange_code(upstream, settings(), pending, code)
        person = link_person(db, upstream.issuer, claims)
        db.commit()
    except FederationError as exc:
        logger.warning("federation_rejected", code=exc.code, detail=exc.detail)
        return _failed(exc.detail, 502)
    start_login(person, ["fed"])
    return redirect(pending.next_url)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
