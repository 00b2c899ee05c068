"""The OpenID Connect part of a console sign-in: identity as the provider, tokens checked.

The protocol itself (PKCE, the code exchange, every ID-token check) is
:mod:`common.oidc_client`; here it is wired to identity (public endpoints through the gateway
for the browser, its internal URL server-to-server), the console's client secret is found,
and every failure becomes a :class:`ConsoleLoginFailed` page. The access token is verified
as every service verifies one (:func:`common.web.auth.get_verifier`, audience
``xsn:<service>``) and must belong to the same person and client as the ID token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from flask import current_app

from common.http import ServiceClient
from common.oidc_client import Client, InvalidIDToken, IssuerMismatch, OIDCError, OpenIDProvider, ProviderUnavailable
from common.web.auth import InvalidToken, get_verifier, resolved_settings

log = structlog.get_logger("xsn.console_login")


@dataclass(frozen=True)
class Console:
    name: str
    client_id: str
    scopes: tuple[str, ...]
    on_success_endpoint: str
    base_template: str | None = None  # the console's page shell for the 403 and sign-in pages


class ConsoleForbidden(Exception):
    """Signed in, but without the console's scopes: a 403 page (with a sign-out button)."""

    def __init__(self, console: str, missing: set[str]) -> None:
        super().__init__(f"missing scopes {sorted(missing)}")
        self.console, self.missing = console, missing


class ConsoleLoginFailed(Exception):
    """The sign-in could not complete: a page saying why, with a way to start again."""

    def __init__(self, console: str, message_key: str, status: int = 400, **params: str) -> None:
        super().__init__(message_key)
        self.console, self.message_key, self.status, self.params = console, message_key, status, params


def provider() -> OpenIDProvider:
    """Identity as this app's OpenID provider (one per app, cached with its keys)."""
    app = current_app
    cached = app.extensions.get("xsn_console_provider")
    if cached is None:
        internal = app.config["SERVICE_URLS"]["identity"]
        cached = OpenIDProvider(resolved_settings(app)["issuer"], internal_base=internal,
                                http=ServiceClient.from_config(internal, app.config))
        app.extensions["xsn_console_provider"] = cached
    return cached


def client_secret(client_id: str) -> str | None:
    """``CONSOLE_CLIENT_SECRET``, or in the embedded setup the demo secret identity's seed wrote."""
    config = current_app.config
    if config.get("CONSOLE_CLIENT_SECRET"):
        return str(config["CONSOLE_CLIENT_SECRET"])
    if config.get("ENV") == "production":
        return None  # fail closed: production configures XSN_CONSOLE_CLIENT_SECRET
    path = Path(config["VAR_DIR"]) / "clients.json"
    try:
        return json.loads(path.read_text())[client_id]["client_secret"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start(console: Console, redirect_uri: str, **extra: str):
    """A fresh :class:`~common.oidc_client.AuthorizationRequest` for ``console``.

    :raise ConsoleLoginFailed: (503) identity cannot be reached or names another issuer.
    """
    try:
        return provider().authorization_request(Client(console.client_id, redirect_uri, " ".join(console.scopes)),
                                                **extra)
    except (ProviderUnavailable, IssuerMismatch) as exc:
        raise ConsoleLoginFailed(console.name, "console.unavailable", 503) from exc


def end_session_url(console: Console, id_token: str, post_logout_redirect_uri: str) -> str:
    """:raise ConsoleLoginFailed: (503) identity cannot be reached."""
    try:
        return provider().end_session_url(id_token, post_logout_redirect_uri)
    except OIDCError as exc:
        raise ConsoleLoginFailed(console.name, "console.unavailable", 503) from exc


def exchange(console: Console, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    """The token response for ``code``. :raise ConsoleLoginFailed: identity refused or is unreachable."""
    secret = client_secret(console.client_id)
    if not secret:
        log.error("console_client_secret_missing", client_id=console.client_id)
        raise ConsoleLoginFailed(console.name, "console.failed.exchange", 503)
    client = Client(console.client_id, redirect_uri, " ".join(console.scopes), client_secret=secret)
    try:
        return provider().exchange_code(client, code, verifier)
    except OIDCError as exc:
        raise ConsoleLoginFailed(console.name, "console.failed.exchange", 502) from exc


def verify_tokens(console: Console, tokens: dict[str, Any], nonce: str) -> tuple[dict, dict]:
    """Verified (ID token claims, access token claims). :raise ConsoleLoginFailed: any check fails."""
    try:
        claims = provider().verify_id_token(tokens["id_token"], client_id=console.client_id, nonce=nonce,
                                            access_token=tokens["access_token"])
        access = get_verifier().verify(tokens["access_token"])
        if access.get("sub") != claims["sub"] or access.get("client_id") != console.client_id:
            raise InvalidIDToken("the access token is for someone or something else", ["sub"])
    except (OIDCError, InvalidToken, KeyError, TypeError) as exc:
        log.warning("console_token_rejected", console=console.name, error_type=type(exc).__name__)
        raise ConsoleLoginFailed(console.name, "console.failed.token", 502) from exc
    return claims, access
