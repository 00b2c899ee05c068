"""Minting: the access token (RFC 9068), its refresh token, and ID tokens at refresh. Flask-free.

``sid`` (the login session) goes into every access token issued in a login session, so
revoking the session revokes them all (the gateway learns of it through the revocation feed).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy.orm import Session

from common.db import utcnow
from identity.oauth import tokens
from identity.oauth.kernel import AuthContext, digest
from identity.oauth.models import OAuthClient, RefreshToken


@dataclass(frozen=True)
class RefreshPlan:
    """The refresh token to make alongside an access token."""

    family_id: str
    scope: str
    expires_at: datetime


def person_audiences(client: OAuthClient, scope: str) -> list[str]:
    """A person's token is for the client's APIs, and for userinfo when it carries ``openid``."""
    audiences = list(client.audiences)
    if "openid" in scope.split() or not audiences:
        audiences.append("xsn:identity")
    return list(dict.fromkeys(audiences))


def new_family(client: OAuthClient, scope: str) -> RefreshPlan:
    return RefreshPlan(family_id=secrets.token_hex(16), scope=scope,
                       expires_at=utcnow() + timedelta(seconds=client.refresh_token_lifetime))


def issue_tokens(session: tokens.SessionSource, keys: Any, *, issuer: str, client: OAuthClient, subject: str,
                 person_id: str | None, scope: str, audience: list[str], ctx: AuthContext | None,
                 refresh: RefreshPlan | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sign an access token (and add a refresh token row when ``refresh`` says so).

    Returns the token response and the access token's claims. Nothing is written for a token
    without a refresh token: access tokens are self-contained. ``session`` may be a function
    giving the session (see :meth:`tokens.SigningKeys.signing_key`): a token for a client alone
    then opens none.
    """
    if person_id and callable(session):  # a person's token reads (and may write) rows
        session = session()
    extra: dict[str, Any] = {}
    if person_id and "staff" in scope.split():
        from identity.accounts import get_person
        from identity.claims import person_claims

        person = get_person(session, person_id)
        if person is not None:
            extra["roles"] = person_claims(session, person, {"staff"}).get("staff", [])
    if ctx is not None and ctx.session_id:
        extra["sid"] = ctx.session_id
    claims = tokens.access_token_claims(
        issuer=issuer, subject=subject, audience=audience, client_id=client.client_id, scope=scope,
        lifetime=client.access_token_lifetime, auth_time=ctx.auth_time if ctx else None,
        acr=ctx.acr if ctx else None, amr=ctx.amr if ctx else None, extra=extra)
    access_token = tokens.sign(keys, session, claims)
    token: dict[str, Any] = {"token_type": "Bearer", "access_token": access_token,
                             "expires_in": client.access_token_lifetime, "scope": scope}
    if refresh is not None and ctx is not None and person_id:
        plain = secrets.token_urlsafe(32)
        session.add(RefreshToken(
            token_hash=digest(plain), family_id=refresh.family_id, client_id=client.client_id,
            person_id=person_id, scope=refresh.scope, session_id=ctx.session_id, auth_time=ctx.auth_time,
            acr=ctx.acr, amr=" ".join(ctx.amr), access_jti=claims["jti"],
            access_expires_at=utcnow() + timedelta(seconds=client.access_token_lifetime),
            issued_at=utcnow(), expires_at=refresh.expires_at))
        token["refresh_token"] = plain
    return token, claims


def refreshed_id_token(session: Session, keys: Any, *, issuer: str, client: OAuthClient, person,
                       row: RefreshToken, scope: str, access_token: str) -> str:
    """OIDC Core §12.2: a new ID token at refresh, same ``iss``, ``sub``, ``aud``, the original
    ``auth_time`` (and acr, amr, sid), a fresh ``iat``/``exp``, and no ``nonce``."""
    from identity.claims import person_claims

    claims = tokens.id_token_claims(
        issuer=issuer, subject=row.person_id, client_id=client.client_id, auth_time=row.auth_time, acr=row.acr,
        amr=row.amr.split(), nonce=None, access_token=access_token, alg=client.id_token_alg,
        session_id=row.session_id, user_claims=person_claims(session, person, set(scope_to_list(scope))))
    return tokens.sign(keys, session, claims, alg=client.id_token_alg, typ="JWT")
