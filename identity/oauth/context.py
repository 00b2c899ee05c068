"""The OAuth server's per-app state, reached from views and Authlib hooks (Flask)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Flask, current_app

from identity.oauth.kernel import issuer_url


@dataclass
class OAuthState:
    server: AuthorizationServer
    keys: Any  # identity.oauth.tokens.SigningKeys: the active signing key per algorithm
    kek: bytes
    secret_key: bytes  # keys the client-secret hashes (identity.oauth.clients)
    introspector: Any  # identity.oauth.tokens.LocalVerifier for tokens of any of our audiences
    clients: Any  # identity.oauth.adapters.ClientDirectory: client rows read fresh, records reused


def state(app: Flask | None = None) -> OAuthState:
    return (app or current_app).extensions["identity_oauth"]


def issuer(app: Flask | None = None) -> str:
    return issuer_url((app or current_app).config)
