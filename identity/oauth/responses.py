"""Error bodies of the OAuth endpoints (RFC 6749 §5.2 and RFC 6750 §3: not problem+json)."""

from __future__ import annotations

from flask import jsonify


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None):
    """An RFC 6749 §5.2 error body (OAuth endpoints do not speak problem+json)."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def bearer_error(error: str, description: str, status: int = 401):
    """RFC 6750 §3: the error also in ``WWW-Authenticate``."""
    response = oauth_error(status, error, description)
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    return response
