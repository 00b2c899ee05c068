"""Access tokens in Flask services: ``require_token``, the caller on ``g``, ``/auth/whoami``.

The verifier itself is Flask-free, in :mod:`common.crypto.access_tokens` (the gateway uses it
too); its names are re-exported here for the services' convenience.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

import structlog
from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from common.crypto.access_tokens import (  # noqa: F401 - re-exported for the services
    ALLOWED_ALGORITHMS,
    InsufficientScope,
    InvalidToken,
    JWKSCache,
    TokenVerifier,
    http_jwks_fetcher,
    scopes_of,
)
from common.web.context import current_app_object, current_request, request_globals

_bind_contextvars = structlog.contextvars.bind_contextvars

# The OpenAPI security scheme of a bearer access token (registered by :func:`init_app`), and the
# requirement every route that needs one documents: ``blp.doc(security=BEARER)``.
BEARER_SCHEME = "bearerAuth"
BEARER = [{BEARER_SCHEME: []}]


# -- Flask integration ----------------------------------------------------------------------
def resolved_settings(app: Flask) -> dict[str, str]:
    config = app.config
    return {
        "issuer": config.get("OAUTH_ISSUER") or f"{config['PUBLIC_BASE_URL'].rstrip('/')}/identity",
        "audience": config.get("OAUTH_AUDIENCE") or f"xsn:{config['SERVICE_NAME']}",
        "jwks_url": config.get("OAUTH_JWKS_URL") or f"{config['SERVICE_URLS']['identity']}/jwks.json",
    }


def get_verifier(app: Flask | None = None) -> TokenVerifier:
    app = current_app_object() if app is None else app
    verifier = app.extensions.get("xsn_token_verifier")
    if verifier is None:
        settings = resolved_settings(app)
        verifier = TokenVerifier(issuer=settings["issuer"], audience=settings["audience"],
                                 jwks=JWKSCache(http_jwks_fetcher(settings["jwks_url"])))
        app.extensions["xsn_token_verifier"] = verifier
    return verifier


def bearer_token() -> str:
    """:raise InvalidToken: no ``Authorization: Bearer`` header."""
    # request.headers["Authorization"], without the headers wrapper
    header = current_request().environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer access token is required", code="token_missing")
    return token.strip()


def authenticate(*scopes: str) -> dict[str, Any]:
    """Verify the request's token and required scopes; remember the caller for logs and audit.

    :raise InvalidToken: 401. :raise InsufficientScope: 403.
    """
    claims = get_verifier().verify(bearer_token())
    state = request_globals()  # every API call comes here
    state.token_claims = claims
    state.client_id = client_id = claims.get("client_id")
    state.subject = subject = claims.get("sub")
    _bind_contextvars(client_id=client_id, subject=subject)
    missing = set(scopes) - scopes_of(claims) if scopes else None
    if missing:
        raise InsufficientScope(f"this call needs scope: {' '.join(sorted(missing))}",
                                required_scopes=sorted(scopes))
    return claims


def require_token(*scopes: str):
    """View decorator: a valid access token carrying every scope in ``scopes``."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            authenticate(*scopes)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def current_claims() -> dict[str, Any]:
    return request_globals().token_claims


blp = Blueprint("auth", __name__, url_prefix="/auth", description="Who the caller is, per its access token")


class WhoAmISchema(Schema):
    sub = fields.String(required=True)
    client_id = fields.String(required=True)
    scope = fields.String()
    aud = fields.Raw()
    acr = fields.String()


@blp.route("/whoami")
class WhoAmI(MethodView):
    @blp.response(200, WhoAmISchema)
    @blp.alt_response(401, description="no or invalid access token")
    @blp.doc(security=BEARER)
    def get(self):
        """The verified claims of the caller's access token (any scope)."""
        return authenticate()


def init_app(app: Flask, api) -> None:
    api.spec.components.security_scheme(BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.register_blueprint(blp)
