"""Token introspection (RFC 7662) and revocation (RFC 7009) as Authlib endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from sqlalchemy.orm import Session

from common.crypto.access_tokens import InvalidToken
from common.db import get_session, utcnow
from identity.oauth.adapters import AccessRecord, RefreshRecord
from identity.oauth.context import issuer, state
from identity.oauth.kernel import digest
from identity.oauth.models import OAuthClient, RefreshToken
from identity.oauth.refresh_tokens import revoke_family
from identity.oauth.revocations import revoke_access_jti


def client_disabled(session: Session, client_id: Any) -> bool:
    """A token of a disabled (or unknown) client no longer works here."""
    row = session.get(OAuthClient, client_id) if isinstance(client_id, str) else None
    return row is None or row.disabled_at is not None


def lookup_token(token_string: str, hint: str | None):
    """An access token (any of our audiences, unrevoked) or a refresh token, else ``None``."""
    session = get_session()
    if hint != "refresh_token" and token_string.count(".") == 2:
        try:
            claims = state().introspector.verify(token_string)
        except InvalidToken:
            return None
        return None if client_disabled(session, claims.get("client_id")) else AccessRecord(claims)
    row = session.get(RefreshToken, digest(token_string))
    if row is None or client_disabled(session, row.client_id):
        return None
    return RefreshRecord(row, issuer())


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string, token_type_hint):
        return lookup_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        # The token's own client, or a resource server registered for introspection.
        return token.check_client(client) or "identity:introspect" in client.model.scopes

    def introspect_token(self, token):
        return token.introspection()


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string, token_type_hint):
        return lookup_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        session = get_session()
        if isinstance(token, AccessRecord):
            exp = datetime.fromtimestamp(token.claims["exp"], tz=utcnow().tzinfo)
            revoke_access_jti(session, str(token.claims["jti"]), exp)
        else:
            revoke_family(session, token.row.family_id, reason="revoked_by_client")
        session.commit()
