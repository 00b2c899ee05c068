"""The JSON endpoints of the OAuth server: token, introspection, revocation, userinfo, JWKS,
discovery, and the revocation feed. Each only translates HTTP; the rules are elsewhere."""

from __future__ import annotations

import hashlib

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


def _token_failure_keys() -> list[str]:
    # Namespaced by deployment (its database): nodes sharing one Redis count separately.
    scope = current_app.extensions.get("identity_token_failure_scope")
    if scope is None:
        digest = hashlib.sha256(current_app.config["DATABASE_URL"].encode()).hexdigest()[:12]
        scope = current_app.extensions["identity_token_failure_scope"] = f"oauth-token-fail:{digest}"
    keys = [f"{scope}:ip:{request.remote_addr or 'unknown'}"]
    client_id = request.form.get("client_id") or (request.authorization.username if request.authorization else None)
    if client_id:
        keys.append(f"{scope}:client:{client_id[:64]}")
    return keys


def _direct_client_credentials() -> Response | None:
    """A valid client-credentials request answered without Authlib's machinery (the same
    checks, the same body: :mod:`identity.oauth.client_credentials`); ``None`` for any other
    request, which Authlib answers. A query string sends the request to Authlib too (Authlib
    reads parameters from the query as well as the body)."""
    if request.query_string:
        return None
    oauth = state()
    form = request.form
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
    keys = _token_failure_keys()
    if not all(limits.allows(key, limit) for key in keys):
        return oauth_error(429, "invalid_request", "Too many failed token requests; try again later.",
                           {"Retry-After": str(parse_limit(limit).get_expiry())})
    response = _direct_client_credentials()
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
