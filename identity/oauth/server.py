"""The OAuth 2.0 / OpenID Connect server, wired in one place (:func:`init_oauth`).

Authlib does the protocol (request validation, client authentication, PKCE, error format);
the grants (:mod:`.grants`) only implement its hooks. What Authlib does not give is ours:
RFC 9068 JWT access tokens signed with rotating keys (:mod:`.tokens`), refresh-token
rotation with reuse detection (:mod:`.refresh_tokens`), consent, discovery, JWKS, and the
revocation feed (:mod:`.revocations`).
"""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Flask

from common.crypto.keystore import load_kek
from common.db import get_db, get_session, request_session_open
from identity.oauth import revocations, tokens
from identity.oauth.adapters import ClientAdapter, ClientDirectory
from identity.oauth.clients import secret_hash_key
from identity.oauth.context import OAuthState, issuer, state
from identity.oauth.endpoints import IntrospectionEndpoint, RevocationEndpoint
from identity.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDCode,
    PkceS256,
    RefreshTokenGrant,
)


def _query_client(client_id):
    if not client_id or not isinstance(client_id, str):
        return None
    oauth = state()
    record = oauth.clients.get(client_id)
    return ClientAdapter(record, oauth.secret_key) if record is not None else None


def _save_token(token, request):
    # A client-credentials token writes nothing (and may not have opened a session at all);
    # the grants that add rows (codes, refresh tokens) commit them here.
    if request_session_open():
        get_session().commit()


def init_oauth(app: Flask, api) -> None:
    """Wire the authorization server, its endpoints, the pages and the admin API into ``app``."""
    from identity.oauth import admin_api, pages
    from identity.oauth.api import bp

    kek = load_kek(app.config)
    factory = get_db(app).sessionmaker
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(AuthorizationCodeGrant, [PkceS256(required=True), OpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    # identity verifies its own tokens from its own key table (no HTTP call to itself), with
    # the shared verifier, and refuses revoked ones.
    introspector = tokens.LocalVerifier(issuer=lambda: issuer(app), audience=None, keys=tokens.LocalKeys(factory),
                                        current_session=get_session)
    app.extensions["identity_oauth"] = OAuthState(server=server, keys=tokens.SigningKeys(kek), kek=kek,
                                                  secret_key=secret_hash_key(kek), introspector=introspector,
                                                  clients=ClientDirectory(get_db(app).engine, factory))
    app.extensions.setdefault("xsn_token_verifier", introspector.for_audience(
        app.config.get("OAUTH_AUDIENCE") or "xsn:identity", leeway=30))
    if app.config.get("REDIS_URL"):
        revocations.install_publisher(factory, revocations.redis_publisher(app.config["REDIS_URL"]))
    app.register_blueprint(bp)
    pages.init_app(app)
    api.register_blueprint(admin_api.blp)
