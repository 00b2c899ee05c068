"""The OAuth 2.0 / OpenID Connect server, wired in one place (:func:`init_oauth`).

Authlib does the protocol (request validation, client authentication, PKCE, error format);
the grants below are thin subclasses that only implement the hooks Authlib asks for, plus
what it does not give: RFC 9068 JWT access tokens signed with rotating keys
(:mod:`identity.tokens`), refresh-token rotation with reuse detection (a replayed refresh
token or authorization code revokes everything issued from it), consent, discovery, JWKS.

Access tokens are not stored: services verify them locally. Refresh tokens and codes are
stored as SHA-256 digests; revoking an access token records its ``jti``, which this
service's introspection and userinfo honour (services see it expire within its lifetime).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from flask import Blueprint, Flask, current_app, jsonify, redirect, request, url_for
from limits import parse as parse_limit
from sqlalchemy import select, update

from common.crypto.keystore import load_kek
from common.db import get_db, get_session, utcnow
from identity import tokens
from identity.accounts import acr_for
from identity.clients import check_secret, secret_hash_key
from identity.oauth_models import PUBLIC, AuthorizationCode, OAuthClient, RefreshToken

log = structlog.get_logger("xsn.identity.oauth")

# Settings of the OAuth part; identity/__init__.py merges them into the service's SETTINGS.
SETTINGS: dict[str, Any] = {
    "OAUTH_CODE_LIFETIME": 120,  # seconds an authorization code is valid
    "OAUTH_TOKEN_FAILURE_LIMIT": "20/minute",  # failed token requests per client IP and per client id
    "OAUTH_SCOPES_SUPPORTED": None,  # None: any scope a client is registered for
    # Federation with the provincial node (身份认证服务互联互通); off unless the issuer is set.
    "FEDERATION_UPSTREAM_ISSUER": None,
    "FEDERATION_CLIENT_ID": None,
    "FEDERATION_CLIENT_SECRET": None,
    "FEDERATION_SCOPE": "openid profile idcard:full",
    "FEDERATION_TIMEOUT": 5.0,
    # Demo client secrets derived from the KEK, written to var/clients.json (embedded only).
    "OAUTH_DEMO_CLIENT_SECRETS": True,
}

# Scopes about a person: never granted to a client-credentials token (it has no person).
PERSON_SCOPES = frozenset({"openid", "profile", "phone", "phone:full", "idcard", "idcard:full", "org", "staff",
                           "offline_access"})


def issuer(app: Flask | None = None) -> str:
    config = (app or current_app).config
    return (config.get("OAUTH_ISSUER") or f"{config['PUBLIC_BASE_URL'].rstrip('/')}/identity").rstrip("/")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class OAuthState:
    server: AuthorizationServer
    keys: tokens.KeyCache
    kek: bytes
    secret_key: bytes


def state(app: Flask | None = None) -> OAuthState:
    return (app or current_app).extensions["identity_oauth"]


# -- authlib model adapters -----------------------------------------------------------------
class ClientAdapter(ClientMixin):
    def __init__(self, model: OAuthClient, secret_key: bytes) -> None:
        self.model = model
        self._secret_key = secret_key

    @property
    def client_id(self) -> str:
        return self.model.client_id

    def get_client_id(self):
        return self.model.client_id

    def get_default_redirect_uri(self):
        return None  # redirect_uri is required on every request (exact match only)

    def get_allowed_scope(self, scope):
        allowed = [s for s in scope_to_list(scope or "") if s in self.model.scopes]
        return " ".join(dict.fromkeys(allowed)) or None

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.model.redirect_uris  # exact string match, no prefix or pattern

    def check_client_secret(self, client_secret):
        return check_secret(self._secret_key, self.model.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.model.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.model.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.model.grant_types


class CodeRecord(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row

    def get_redirect_uri(self):
        return self.row.redirect_uri

    def get_scope(self):
        return self.row.scope

    def get_nonce(self):
        return self.row.nonce

    def get_auth_time(self):
        return int(self.row.auth_time.timestamp())

    def get_acr(self):
        return acr_for(self.row.acr)

    def get_amr(self):
        return self.row.amr.split()


class RefreshRecord(TokenMixin):
    kind = "refresh_token"

    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def check_client(self, client):
        return self.row.client_id == client.get_client_id()

    def get_scope(self):
        return self.row.scope

    def get_expires_in(self):
        return max(0, int((self.row.expires_at - utcnow()).total_seconds()))

    def is_expired(self):
        return self.row.expires_at <= utcnow()

    def is_revoked(self):
        return self.row.revoked_at is not None or self.row.used_at is not None

    def introspection(self) -> dict[str, Any]:
        return {"active": True, "token_type": "refresh_token", "client_id": self.row.client_id,
                "sub": self.row.person_id, "scope": self.row.scope, "iss": issuer(),
                "exp": int(self.row.expires_at.timestamp()), "iat": int(self.row.issued_at.timestamp())}


class AccessRecord(TokenMixin):
    kind = "access_token"

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    def check_client(self, client):
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self):
        return self.claims.get("scope", "")

    def get_expires_in(self):
        return max(0, int(self.claims["exp"] - utcnow().timestamp()))

    def is_expired(self):
        return self.claims["exp"] <= utcnow().timestamp()

    def is_revoked(self):
        return False  # decode_access_token already refused revoked ones

    def introspection(self) -> dict[str, Any]:
        keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "acr", "auth_time")
        return {"active": True, "token_type": "Bearer", **{k: self.claims[k] for k in keep if k in self.claims}}


# -- issuing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthContext:
    """How and when the person authenticated, carried from the login to every token."""

    session_id: str | None
    auth_time: datetime
    acr: int
    amr: list[str]


def _issue(grant, *, subject: str, person_id: str | None, scope: str, audience: list[str],
           ctx: AuthContext | None, refresh: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sign an access token (and make a refresh token when ``refresh`` says so).

    ``refresh`` holds ``family_id``, ``scope`` and ``expires_at`` of the refresh token to make.
    """
    client: OAuthClient = grant.client.model
    session = get_session()
    extra: dict[str, Any] = {}
    if person_id and {"staff"} & set(scope.split()):
        from identity.accounts import get_person, person_claims

        person = get_person(session, person_id)
        if person is not None:
            extra["roles"] = person_claims(session, person, {"staff"}).get("staff", [])
    claims = tokens.access_token_claims(
        issuer=issuer(), subject=subject, audience=audience, client_id=client.client_id, scope=scope,
        lifetime=client.access_token_lifetime, auth_time=ctx.auth_time if ctx else None,
        acr=ctx.acr if ctx else None, amr=ctx.amr if ctx else None, extra=extra)
    access_token = tokens.sign(state().keys, session, claims)
    token: dict[str, Any] = {"token_type": "Bearer", "access_token": access_token,
                             "expires_in": client.access_token_lifetime, "scope": scope}
    grant.request.xsn_access_claims = claims
    if refresh is not None and ctx is not None and person_id:
        plain = secrets.token_urlsafe(32)
        session.add(RefreshToken(
            token_hash=digest(plain), family_id=refresh["family_id"], client_id=client.client_id,
            person_id=person_id, scope=refresh["scope"], session_id=ctx.session_id, auth_time=ctx.auth_time,
            acr=ctx.acr, amr=" ".join(ctx.amr), access_jti=claims["jti"],
            access_expires_at=utcnow() + timedelta(seconds=client.access_token_lifetime),
            issued_at=utcnow(), expires_at=refresh["expires_at"]))
        token["refresh_token"] = plain
    return token


def person_audiences(client: OAuthClient, scope: str) -> list[str]:
    """A person's token is for the client's APIs, and for userinfo when it carries ``openid``."""
    audiences = list(client.audiences)
    if "openid" in scope.split() or not audiences:
        audiences.append("xsn:identity")
    return list(dict.fromkeys(audiences))


def revoke_family(session, family_id: str, *, reason: str) -> int:
    """Revoke every refresh token of a family and deny its access tokens; flushes."""
    now = utcnow()
    count = 0
    for row in session.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id)):
        if row.revoked_at is None:
            row.revoked_at = now
            count += 1
        tokens.revoke_access_jti(session, row.access_jti, row.access_expires_at)
    session.flush()
    log.warning("refresh_family_revoked", family_id=family_id, reason=reason, tokens=count)
    return count


def revoke_families(session, *where, reason: str) -> None:
    """:func:`revoke_family` for every family with an unrevoked refresh token matching ``where``."""
    families = set(session.scalars(select(RefreshToken.family_id).where(*where, RefreshToken.revoked_at.is_(None))))
    for family_id in families:
        revoke_family(session, family_id, reason=reason)


def revoke_code_issue(session, row: AuthorizationCode) -> None:
    """A replayed code: revoke what its first use issued (OAuth 2.0 §4.1.2, RFC 9700 §4.5)."""
    if row.family_id:
        revoke_family(session, row.family_id, reason="authorization_code_replayed")
    if row.access_jti:
        tokens.revoke_access_jti(session, row.access_jti, utcnow() + timedelta(days=1))
    log.warning("authorization_code_replayed", client_id=row.client_id)


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource (audience) is not allowed for the client."""

    error = "invalid_target"


# -- grants (thin: only Authlib's hooks) -----------------------------------------------------
class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

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
            revoke_code_issue(session, row)
            session.commit()
            return None
        if row.expires_at <= utcnow():
            return None
        return CodeRecord(row)

    def delete_authorization_code(self, authorization_code):
        pass  # codes are claimed atomically in generate_token and kept to detect replays

    def authenticate_user(self, authorization_code):
        from identity.accounts import get_person

        return get_person(get_session(), authorization_code.row.person_id)

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        session = get_session()
        row: AuthorizationCode = self.request.authorization_code.row
        claimed = session.execute(update(AuthorizationCode)
                                  .where(AuthorizationCode.code_hash == row.code_hash,
                                         AuthorizationCode.used_at.is_(None))
                                  .values(used_at=utcnow())).rowcount
        if claimed != 1:  # a concurrent request won: this one is a replay
            session.rollback()
            row = session.get(AuthorizationCode, row.code_hash)
            revoke_code_issue(session, row)
            session.commit()
            raise InvalidGrantError("The authorization code was already used.")
        client: OAuthClient = self.client.model
        ctx = AuthContext(row.session_id, row.auth_time, row.acr, row.amr.split())
        refresh = None
        if include_refresh_token:
            refresh = {"family_id": secrets.token_hex(16), "scope": row.scope,
                       "expires_at": utcnow() + timedelta(seconds=client.refresh_token_lifetime)}
        token = _issue(self, subject=user.id, person_id=user.id, scope=row.scope,
                       audience=person_audiences(client, row.scope), ctx=ctx, refresh=refresh)
        row.family_id = refresh["family_id"] if refresh else None
        row.access_jti = self.request.xsn_access_claims["jti"]
        return token


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        session = get_session()
        row = session.get(RefreshToken, digest(refresh_token))
        if row is None or row.revoked_at is not None:
            return None
        if row.used_at is not None:  # rotated away already: someone replays it
            revoke_family(session, row.family_id, reason="refresh_token_reused")
            session.commit()
            return None
        if row.expires_at <= utcnow():
            return None
        return RefreshRecord(row)

    def authenticate_user(self, refresh_token):
        from identity.accounts import get_person

        return get_person(get_session(), refresh_token.row.person_id)

    def revoke_old_credential(self, refresh_token):
        pass  # marked used when claimed in generate_token

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        session = get_session()
        row: RefreshToken = self.request.refresh_token.row
        claimed = session.execute(update(RefreshToken)
                                  .where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None),
                                         RefreshToken.revoked_at.is_(None))
                                  .values(used_at=utcnow())).rowcount
        if claimed != 1:
            session.rollback()
            revoke_family(session, row.family_id, reason="refresh_token_reused")
            session.commit()
            raise InvalidGrantError("The refresh token was already used.")
        client: OAuthClient = self.client.model
        ctx = AuthContext(row.session_id, row.auth_time, row.acr, row.amr.split())
        refresh = {"family_id": row.family_id, "scope": row.scope, "expires_at": row.expires_at}
        granted = scope or row.scope
        token = _issue(self, subject=user.id, person_id=user.id, scope=granted,
                       audience=person_audiences(client, granted), ctx=ctx, refresh=refresh)
        if "openid" in granted.split():
            token["id_token"] = refreshed_id_token(client, user, row, granted, token["access_token"])
        return token


def refreshed_id_token(client: OAuthClient, person, row: RefreshToken, scope: str, access_token: str) -> str:
    """OIDC Core §12.2: a new ID token at refresh, same ``iss``, ``sub``, ``aud``, the original
    ``auth_time`` (and acr, amr, sid), a fresh ``iat``/``exp``, and no ``nonce``."""
    from identity.accounts import person_claims

    session = get_session()
    claims = tokens.id_token_claims(
        issuer=issuer(), subject=row.person_id, client_id=client.client_id, auth_time=row.auth_time, acr=row.acr,
        amr=row.amr.split(), nonce=None, access_token=access_token, alg=client.id_token_alg,
        session_id=row.session_id, user_claims=person_claims(session, person, set(scope_to_list(scope))))
    return tokens.sign(state().keys, session, claims, alg=client.id_token_alg, typ="JWT")


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=False):
        client: OAuthClient = self.client.model
        allowed = [s for s in client.scopes if s not in PERSON_SCOPES]
        requested = scope_to_list(scope or "") or []
        if not set(requested) <= set(allowed):
            raise InvalidScopeError("The client may not request these scopes.")
        form = self.request.form
        targets = [*form.getlist("resource"), *form.getlist("audience")]
        if targets and not set(targets) <= set(client.audiences):
            raise InvalidTargetError(description="The client may not ask for this audience.")
        audience = list(dict.fromkeys(targets)) or list(client.audiences) or ["xsn:identity"]
        return _issue(self, subject=client.client_id, person_id=None, scope=" ".join(requested or allowed),
                      audience=audience, ctx=None)


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
        from identity.accounts import person_claims

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


# -- endpoints -------------------------------------------------------------------------------
def client_disabled(session, client_id: Any) -> bool:
    """A token of a disabled (or unknown) client no longer works here."""
    row = session.get(OAuthClient, client_id) if isinstance(client_id, str) else None
    return row is None or row.disabled_at is not None


def lookup_token(token_string: str, hint: str | None):
    session = get_session()
    if hint != "refresh_token" and token_string.count(".") == 2:
        try:
            claims = tokens.decode_access_token(state().keys, session, token_string, issuer=issuer())
        except tokens.InvalidAccessToken:
            return None
        return None if client_disabled(session, claims.get("client_id")) else AccessRecord(claims)
    row = session.get(RefreshToken, digest(token_string))
    if row is None or client_disabled(session, row.client_id):
        return None
    return RefreshRecord(row)


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
            tokens.revoke_access_jti(session, str(token.claims["jti"]), exp)
        else:
            revoke_family(session, token.row.family_id, reason="revoked_by_client")
        session.commit()


# -- wiring ----------------------------------------------------------------------------------
def _query_client(client_id):
    if not client_id:
        return None
    row = get_session().get(OAuthClient, client_id)
    if row is None or row.disabled_at is not None:
        return None
    return ClientAdapter(row, state().secret_key)


def _save_token(token, request):
    get_session().commit()


def _token_failure_keys() -> list[str]:
    # Namespaced by deployment (its database): nodes sharing one Redis count separately.
    scope = "oauth-token-fail:" + hashlib.sha256(current_app.config["DATABASE_URL"].encode()).hexdigest()[:12]
    keys = [f"{scope}:ip:{request.remote_addr or 'unknown'}"]
    client_id = request.form.get("client_id") or (request.authorization.username if request.authorization else None)
    if client_id:
        keys.append(f"{scope}:client:{client_id[:64]}")
    return keys


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None):
    """An RFC 6749 §5.2 error body (OAuth endpoints do not speak problem+json)."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


bp = Blueprint("oauth", __name__)


@bp.post("/oauth/token")
def token_endpoint():
    from common.web.ratelimit import get_limits

    limits = get_limits()
    limit = current_app.config["OAUTH_TOKEN_FAILURE_LIMIT"]
    keys = _token_failure_keys()
    if not all(limits.allows(key, limit) for key in keys):
        return oauth_error(429, "invalid_request", "Too many failed token requests; try again later.",
                           {"Retry-After": str(parse_limit(limit).get_expiry())})
    response = state().server.create_token_response()
    if response.status_code in (400, 401):
        for key in keys:
            limits.hit(key, limit)
    return response


@bp.post("/oauth/introspect")
def introspection_endpoint():
    return state().server.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)


@bp.post("/oauth/revoke")
def revocation_endpoint():
    return state().server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)


def _bearer_error(error: str, description: str, status: int = 401):
    response = oauth_error(status, error, description)
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    return response


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo_endpoint():
    from identity.accounts import get_person, person_claims

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _bearer_error("invalid_token", "A bearer access token is required.")
    session = get_session()
    try:
        claims = tokens.decode_access_token(state().keys, session, token.strip(), issuer=issuer())
    except tokens.InvalidAccessToken as exc:
        return _bearer_error("invalid_token", exc.detail)
    if client_disabled(session, claims.get("client_id")):
        return _bearer_error("invalid_token", "The token's client is disabled.")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    scopes = set(str(claims.get("scope", "")).split())
    if "xsn:identity" not in audiences or "openid" not in scopes:
        return _bearer_error("insufficient_scope", "The token does not carry the openid scope.", 403)
    person = get_person(session, claims["sub"])
    if person is None:
        return _bearer_error("invalid_token", "The token's subject no longer exists.")
    response = jsonify(person_claims(session, person, scopes))
    response.headers["Cache-Control"] = "no-store"
    return response


def _id_token_hint_claims(hint: str) -> dict[str, Any] | None:
    """Claims of an ID token we issued (expired is fine for a logout hint), else ``None``."""
    try:
        claims = tokens.verify_signature(state().keys, get_session(), hint)
    except tokens.InvalidAccessToken:
        return None
    return claims if claims.get("iss") == issuer() else None


@bp.route("/oauth/logout", methods=["GET", "POST"])
def end_session_endpoint():
    """RP-initiated logout: ends the login session, revokes its refresh tokens, and returns to
    ``post_logout_redirect_uri`` only if it is registered (exactly) for the identified client.

    With a valid ``id_token_hint`` naming the signed-in person the logout happens at once.
    Without one anybody could have sent the browser here (a cross-site link or image), so the
    person is asked first (RP-Initiated Logout 1.0 §2): a CSRF-protected form posted back here
    with ``confirm=yes``.
    """
    from flask import render_template

    from common.web.pages import csrf
    from identity.login import current_login, end_login

    values = request.values
    hint = values.get("id_token_hint")
    claims = _id_token_hint_claims(hint) if hint else None
    if hint and claims is None:
        return oauth_error(400, "invalid_request", "id_token_hint is not an ID token issued here")
    client_id = values.get("client_id") or (claims or {}).get("azp") or (claims or {}).get("aud")
    if claims and values.get("client_id") and values.get("client_id") != claims.get("aud"):
        return oauth_error(400, "invalid_request", "client_id does not match the id_token_hint")
    target = values.get("post_logout_redirect_uri")
    session = get_session()
    client = session.get(OAuthClient, client_id) if isinstance(client_id, str) else None
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return oauth_error(400, "invalid_request", "post_logout_redirect_uri is not registered for the client")
    login = current_login()
    if login is not None and claims is None:
        decision = request.form.get("confirm") if request.method == "POST" else None
        if decision is None:
            return render_template("identity/logout_confirm.html", client=client, target=target,
                                   client_id=client_id if client is not None else None, state=values.get("state"))
        csrf.protect()  # 400 problem when the form was not ours
        if decision != "yes":
            return redirect(url_for("pages.account"))
    if login is not None and (claims is None or claims.get("sub") == login.person_id):
        revoke_families(session, RefreshToken.session_id == login.session_id, reason="logout")
        session.commit()
        end_login()
    if target:
        from authlib.common.urls import add_params_to_uri

        params = [("state", values["state"])] if values.get("state") else []
        return redirect(add_params_to_uri(target, params) if params else target)
    return render_template("identity/signed_out.html")


@bp.get("/jwks.json")
def jwks_endpoint():
    response = jsonify(tokens.jwks_document(get_session()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/openid-configuration")
def discovery_endpoint():
    base = issuer()
    scopes = sorted({*PERSON_SCOPES, *(current_app.config.get("OAUTH_SCOPES_SUPPORTED") or [])})
    document = {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "jwks_uri": f"{base}/jwks.json",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "end_session_endpoint": f"{base}/oauth/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
                             "at_hash", "name", "updated_at", "phone_number", "id_number", "organisations", "staff",
                             "assurance_level"],
        "acr_values_supported": list(tokens.ACR_VALUES),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "ui_locales_supported": ["zh-CN", "en"],
        "authorization_response_iss_parameter_supported": False,
    }
    response = jsonify(document)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _local_verifier(app: Flask):
    """identity verifies its own tokens from its own key table: no HTTP call to itself."""
    from common.web.auth import JWKSCache, TokenVerifier

    def fetch() -> dict:
        with get_db(app).session() as session:
            return tokens.jwks_document(session)

    return TokenVerifier(issuer=issuer(app), audience=app.config.get("OAUTH_AUDIENCE") or "xsn:identity",
                         jwks=JWKSCache(fetch, ttl=60.0, min_refresh=1.0))


def init_oauth(app: Flask, api) -> None:
    """Wire the authorization server, its endpoints, the pages and the admin API into ``app``."""
    for key, value in SETTINGS.items():
        app.config.setdefault(key, value)
    kek = load_kek(app.config)
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(AuthorizationCodeGrant, [PkceS256(required=True), OpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    app.extensions["identity_oauth"] = OAuthState(server=server, keys=tokens.KeyCache(kek), kek=kek,
                                                  secret_key=secret_hash_key(kek))
    app.extensions.setdefault("xsn_token_verifier", _local_verifier(app))
    app.register_blueprint(bp)

    from identity import authorize, federation, oauth_admin

    authorize.init_app(app)
    federation.init_app(app)
    api.register_blueprint(oauth_admin.blp)
