"""The JSON endpoints of the OAuth server: token, introspection, revocation, userinfo, JWKS,
discovery, and the revocation feed. Each only translates HTTP; the rules are elsewhere."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.grants.base import BaseGrant
from flask import Blueprint, Response, current_app, g, json, jsonify, request
from limits import parse as parse_limit

from common.crypto.access_tokens import InvalidToken
from common.db import get_session
from common.web.auth import require_token
from identity.oauth import client_credentials, revocations, tokens
from identity.oauth.context import issuer, state
from identity.oauth.discovery import discovery_document
from identity.oauth.endpoints import IntrospectionEndpoint, RevocationEndpoint
from identity.oauth.responses import bearer_error, oauth_error
from identity.oauth.userinfo import UserinfoRefused, userinfo_claims

bp = Blueprint("oauth", __name__)
# What Authlib sends with every token response (JSON, no-store, no-cache).
TOKEN_RESPONSE_HEADERS = BaseGrant.TOKEN_RESPONSE_HEADER
URLENCODED = "application/x-www-form-urlencoded"


def _token_form():
    """The token request's form: what ``request.form`` would hold, for less.

    A token request's body is urlencoded (RFC 6749 §3.2). For it werkzeug's form parsing reads
    three limits from the configuration through the ``current_app`` proxy and builds a parser
    around the stream: about 180 k of a token's 1.6 M instructions (callgrind), for one
    ``parse_qsl``. Here that same ``parse_qsl`` (werkzeug's arguments) runs on the body as
    ``get_data`` reads it, under the same ``MAX_CONTENT_LENGTH`` (413 above it), and a body that
    is not UTF-8 is an empty form, as werkzeug's parser makes it. Any other content type gets
    ``request.form`` itself. The body stays cached, so Authlib, which reads ``request.form`` for
    the requests it answers, parses the same bytes.
    """
    if "form" in request.__dict__ or request.mimetype != URLENCODED:
        return request.form
    try:
        items = parse_qsl(request.get_data().decode(), keep_blank_values=True, errors="werkzeug.url_quote")
    except ValueError:  # werkzeug's parser is silent about a body it cannot decode
        items = []
    return request.parameter_storage_class(items)


def _token_failure_keys(form) -> list[str]:
    # Namespaced by deployment (its database): nodes sharing one Redis count separately.
    scope = current_app.extensions.get("identity_token_failure_scope")
    if scope is None:
        digest = hashlib.sha256(current_app.config["DATABASE_URL"].encode()).hexdigest()[:12]
        scope = current_app.extensions["identity_token_failure_scope"] = f"oauth-token-fail:{digest}"
    keys = [f"{scope}:ip:{request.remote_addr or 'unknown'}"]
    client_id = form.get("client_id") or (request.authorization.username if request.authorization else None)
    if client_id:
        keys.append(f"{scope}:client:{client_id[:64]}")
    return keys


def _direct_client_credentials(form) -> Response | None:
    """A valid client-credentials request answered without Authlib's machinery (the same
    checks, the same body: :mod:`identity.oauth.client_credentials`); ``None`` for any other
    request, which Authlib answers. A query string sends the request to Authlib too (Authlib
    reads parameters from the query as well as the body)."""
    if request.query_string:
        return None
    oauth = state()
    issued = client_credentials.issue(
        directory=oauth.clients, secret_key=oauth.secret_key, keys=oauth.keys, session=get_session,
        issuer=issuer(), authorization=request.headers.get("Authorization"), form=form,
        resources=[*form.getlist("resource"), *form.getlist("audience")],
        scopes_supported=oauth.server.scopes_supported)
    if issued is None:
        return None
    client, token = issued
    g.client_id = g.subject = client.client_id  # for the access line: who got a token
    return Response(json.dumps(token), status=200, headers=TOKEN_RESPONSE_HEADERS)


@bp.post("/oauth/token")
def token_endpoint():
    from common.web.ratelimit import get_limits

    limits = get_limits()
    limit = current_app.config["OAUTH_TOKEN_FAILURE_LIMIT"]
    form = _token_form()
    keys = _token_failure_keys(form)
    if not all(limits.allows(key, limit) for key in keys):
        return oauth_error(429, "invalid_request", "Too many failed token requests; try again later.",
                           {"Retry-After": str(parse_limit(limit).get_expiry())})
    response = _direct_client_credentials(form)
    if response is None:
        response = state().server.create_token_response()
    if response.status_code in (400, 401):  # only failures count
        for key in keys:
            limits.hit(key, limit)
    return response


@bp.post("/oauth/introspect")
def introspection_endpoint():
    return state().server.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)


@bp.post("/oauth/revoke")
def revocation_endpoint():
    return state().server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo_endpoint():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return bearer_error("invalid_token", "A bearer access token is required.")
    try:
        claims = state().introspector.verify(token.strip())
        body = userinfo_claims(get_session(), claims)
    except InvalidToken as exc:
        return bearer_error("invalid_token", exc.detail)
    except UserinfoRefused as exc:
        return bearer_error(exc.error, exc.description, exc.status)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/oauth/revocations")
@require_token("tokens:revocations")
def revocations_endpoint():
    """Revoked access tokens and login sessions after ``after`` (the gateway polls this)."""
    response = jsonify(revocations.feed(get_session(), request.args.get("after")))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/jwks.json")
def jwks_endpoint():
    response = jsonify(tokens.jwks_document(get_session()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/openid-configuration")
def discovery_endpoint():
    response = jsonify(discovery_document(issuer(), current_app.config.get("OAUTH_SCOPES_SUPPORTED") or []))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
