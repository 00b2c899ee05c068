"""Authlib grants, thin: each implements only the hooks Authlib asks for.

The decisions they need live in plain functions (:mod:`.issuing`, :mod:`.refresh_tokens`).
"""

from __future__ import annotations

from datetime import timedelta

from authlib.oauth2.rfc6749 import grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from flask import current_app
from sqlalchemy import select

from common.db import get_session, utcnow
from identity.oauth import refresh_tokens, tokens
from identity.oauth.adapters import CodeRecord, RefreshRecord
from identity.oauth.client_credentials import scope_and_audience
from identity.oauth.context import issuer, state
from identity.oauth.issuing import issue_tokens, new_family, person_audiences, refreshed_id_token
from identity.oauth.kernel import AuthContext, digest
from identity.oauth.models import PUBLIC, AuthorizationCode, OAuthClient, RefreshToken

CLIENT_AUTH_ANY = ["client_secret_basic", "client_secret_post", "none"]


def _issue(grant, **kwargs) -> dict:
    token, claims = issue_tokens(get_session, state().keys, issuer=issuer(), client=grant.client.model, **kwargs)
    grant.request.xsn_access_claims = claims
    return token


def _person(person_id: str):
    from identity.accounts import get_person

    return get_person(get_session(), person_id)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_ANY

    def save_authorization_code(self, code, request):
        ctx: AuthContext = request.xsn_auth
        data = request.payload.data
        session = get_session()
        session.add(AuthorizationCode(
            code_hash=digest(code), client_id=request.client.client_id, person_id=request.user.id,
            redirect_uri=request.payload.redirect_uri, scope=request.xsn_scope, nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"), code_challenge_method=data.get("code_challenge_method"),
            session_id=ctx.session_id, auth_time=ctx.auth_time, acr=ctx.acr, amr=" ".join(ctx.amr),
            created_at=utcnow(),
            expires_at=utcnow() + timedelta(seconds=int(current_app.config["OAUTH_CODE_LIFETIME"]))))
        session.commit()

    def query_authorization_code(self, code, client):
        session = get_session()
        row = session.get(AuthorizationCode, digest(code))
        if row is None or row.client_id != client.get_client_id():
            return None
        if row.used_at is not None:
            refresh_tokens.revoke_code_issue(session, row)
            session.commit()
            return None
        if row.expires_at <= utcnow():
            return None
        return CodeRecord(row)

    def delete_authorization_code(self, authorization_code):
        pass  # codes are claimed atomically in generate_token and kept to detect replays

    def authenticate_user(self, authorization_code):
        return _person(authorization_code.row.person_id)

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        session = get_session()
        row: AuthorizationCode = self.request.authorization_code.row
        if not refresh_tokens.claim_code(session, row):  # a concurrent request won: this one is a replay
            session.commit()
            raise InvalidGrantError("The authorization code was already used.")
        client: OAuthClient = self.client.model
        ctx = AuthContext(row.session_id, row.auth_time, row.acr, row.amr.split())
        refresh = new_family(client, row.scope) if include_refresh_token else None
        token = _issue(self, subject=user.id, person_id=user.id, scope=row.scope,
                       audience=person_audiences(client, row.scope), ctx=ctx, refresh=refresh)
        row.family_id = refresh.family_id if refresh else None
        row.access_jti = self.request.xsn_access_claims["jti"]
        return token


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_ANY
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        session = get_session()
        row = session.get(RefreshToken, digest(refresh_token))
        if row is None or row.revoked_at is not None:
            return None
        if row.used_at is not None:  # rotated away already: someone replays it
            refresh_tokens.revoke_family(session, row.family_id, reason="refresh_token_reused")
            session.commit()
            return None
        if row.expires_at <= utcnow():
            return None
        return RefreshRecord(row, issuer())

    def authenticate_user(self, refresh_token):
        return _person(refresh_token.row.person_id)

    def revoke_old_credential(self, refresh_token):
        pass  # marked used when claimed in generate_token

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        session = get_session()
        row: RefreshToken = self.request.refresh_token.row
        if not refresh_tokens.rotate(session, row):
            session.commit()
            raise InvalidGrantError("The refresh token was already used.")
        client: OAuthClient = self.client.model
        ctx = AuthContext(row.session_id, row.auth_time, row.acr, row.amr.split())
        refresh = refresh_tokens.successor(row)
        granted = scope or row.scope
        token = _issue(self, subject=user.id, person_id=user.id, scope=granted,
                       audience=person_audiences(client, granted), ctx=ctx, refresh=refresh)
        if "openid" in granted.split():
            token["id_token"] = refreshed_id_token(session, state().keys, issuer=issuer(), client=client,
                                                   person=user, row=row, scope=granted,
                                                   access_token=token["access_token"])
        return token


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=False):
        # The same rule as the direct path (identity.oauth.client_credentials), which serves
        # the valid requests; the rest end here, and so do their errors.
        client: OAuthClient = self.client.model
        form = self.request.form
        granted, audience = scope_and_audience(client, scope, [*form.getlist("resource"), *form.getlist("audience")])
        return _issue(self, subject=client.client_id, person_id=None, scope=granted, audience=audience, ctx=None)


class PkceS256(CodeChallenge):
    """PKCE with S256 only (``plain`` refused); public clients must use it."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 ('plain' is not accepted)")
        client = grant.request.client
        if client is not None and client.model.client_type == PUBLIC and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE (code_challenge with S256).")

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.row.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.row.code_challenge_method


class OpenIDCode(_OpenIDCode):
    def exists_nonce(self, nonce, request):
        """A nonce already bound to a code of this client is a replayed authorization request
        (OIDC Core §15.5.2): Authlib then answers ``invalid_request`` at the redirect URI.

        Codes are kept after use (to detect code replays), at least for their lifetime, so a
        reuse within that window is always caught."""
        return get_session().scalar(
            select(AuthorizationCode.code_hash).where(AuthorizationCode.client_id == request.payload.client_id,
                                                      AuthorizationCode.nonce == nonce).limit(1)) is not None

    def generate_user_info(self, user, scope):
        from identity.claims import person_claims

        return person_claims(get_session(), user, set(scope_to_list(scope)))

    def encode_id_token(self, token, request):
        client: OAuthClient = request.client.model
        row: AuthorizationCode = request.authorization_code.row
        alg = client.id_token_alg
        claims = tokens.id_token_claims(
            issuer=issuer(), subject=request.user.id, client_id=client.client_id, auth_time=row.auth_time,
            acr=row.acr, amr=row.amr.split(), nonce=row.nonce, access_token=token.get("access_token"), alg=alg,
            session_id=row.session_id, user_claims=self.generate_user_info(request.user, row.scope))
        return tokens.sign(state().keys, get_session(), claims, alg=alg, typ="JWT")
