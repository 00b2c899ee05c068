"""The UserInfo rules (OIDC Core §5.3): which verified access token gets which claims. Flask-free."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from identity.oauth.models import OAuthClient


class UserinfoRefused(Exception):
    """An RFC 6750 refusal: ``error`` (``invalid_token`` / ``insufficient_scope``) and status."""

    def __init__(self, error: str, description: str, status: int = 401) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def userinfo_claims(session: Session, claims: dict[str, Any]) -> dict[str, Any]:
    """The person's claims for the scopes of a verified, unrevoked access token.

    :raise UserinfoRefused: the token's client is disabled, the token is not for userinfo
        (audience ``xsn:identity`` and scope ``openid``), or its subject is gone.
    """
    from identity.accounts import get_person
    from identity.claims import person_claims

    client = session.get(OAuthClient, claims.get("client_id")) if isinstance(claims.get("client_id"), str) else None
    if client is None or client.disabled_at is not None:
        raise UserinfoRefused("invalid_token", "The token's client is disabled.")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    scopes = set(str(claims.get("scope", "")).split())
    if "xsn:identity" not in audiences or "openid" not in scopes:
        raise UserinfoRefused("insufficient_scope", "The token does not carry the openid scope.", 403)
    person = get_person(session, claims["sub"])
    if person is None:
        raise UserinfoRefused("invalid_token", "The token's subject no longer exists.")
    return person_claims(session, person, scopes)
