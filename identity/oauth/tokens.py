"""Token-signing keys with rotation, RFC 9068 JWT access tokens and OIDC ID tokens.

Keys live in the ``signing_keys`` table through :class:`common.crypto.keystore.KeyStore`
(SM4-GCM sealed under the KEK), one set per algorithm (``oauth-es256``, ``oauth-rs256``). Each
set has one ``active`` key that signs, one ``next`` key that is already published in the
JWKS but not yet used, and ``retired`` keys kept published until every token they signed has
expired. Rotation promotes ``next`` to ``active``: verifiers that cached the JWKS since the
previous rotation already know the new key, so no token is ever signed by an unpublished key.

Reading our own tokens goes through the one shared verifier
(:mod:`common.crypto.access_tokens`) over our own key table, with identity's revocation check
layered on top (:class:`LocalVerifier`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto.access_tokens import InvalidToken, TokenVerifier, sign_compact, verify_compact
from common.crypto.keystore import ACTIVE, ES256, NEXT, RETIRED, RS256, KeyStore, public_jwk  # noqa: F401 - statuses re-exported
from common.db import utcnow
from common.errors import Problem
from identity.accounts import LEVELS
from identity.claims import acr_for
from identity.oauth.models import SigningKey
from identity.oauth.revocations import is_revoked

PURPOSES = {ES256: "oauth-es256", RS256: "oauth-rs256"}
# A session, or a function returning one when it is first needed (the request's get_session).
SessionSource = Session | Callable[[], Session]
ACTIVE_KEY_TTL = 30.0
# Retired keys stay in the JWKS this long: longer than any access or ID token lives.
RETIRED_KEY_RETENTION = timedelta(days=2)
ID_TOKEN_LIFETIME = 600


class TokenKeyError(Problem):
    status, code, title = 500, "token_key_error", "Token signing key error"


# Identity's own name for the shared verifier's error (401 invalid_token).
InvalidAccessToken = InvalidToken


# -- keys ---------------------------------------------------------------------------------
def key_store(session: Session, kek: bytes) -> KeyStore:
    return KeyStore(session, SigningKey, kek)


def ensure_keys(session: Session, kek: bytes) -> None:
    """Make sure each algorithm has an active and a next key; flushes, the caller commits."""
    store = key_store(session, kek)
    for alg, purpose in PURPOSES.items():
        store.ensure_next(purpose, alg)


def rotate_keys(session: Session, kek: bytes, alg: str = ES256) -> SigningKey:
    """Promote the published ``next`` key to ``active``, retire the old one, publish a new next.

    Returns the newly active key; flushes, the caller commits.
    """
    ensure_keys(session, kek)
    return key_store(session, kek).rotate(PURPOSES[alg], alg)


def key_rows(session: Session, alg: str, status: str | None = None) -> list[SigningKey]:
    """The keys of ``alg`` (with ``status``: ACTIVE, NEXT, RETIRED), oldest first."""
    query = select(SigningKey).where(SigningKey.purpose == PURPOSES[alg])
    if status:
        query = query.where(SigningKey.status == status)
    return list(session.scalars(query.order_by(SigningKey.created_at, SigningKey.kid)))


def published_keys(session: Session) -> list[SigningKey]:
    cutoff = utcnow() - RETIRED_KEY_RETENTION
    rows = session.scalars(select(SigningKey).where(SigningKey.purpose.in_(PURPOSES.values()))
                           .order_by(SigningKey.created_at, SigningKey.kid))
    return [r for r in rows if r.status != RETIRED or (r.retired_at and r.retired_at > cutoff)]


def jwks_document(session: Session) -> dict[str, Any]:
    return {"keys": [public_jwk(row) for row in published_keys(session)]}


class SigningKeys:
    """The active signing key per algorithm, re-read at most every ``ttl`` seconds; the private
    key itself comes from the key store's process-wide decryption cache."""

    def __init__(self, kek: bytes, *, ttl: float = ACTIVE_KEY_TTL) -> None:
        self.kek = kek
        self.ttl = ttl
        self._active: dict[str, tuple[float, str, Any]] = {}
        self._lock = threading.Lock()

    def signing_key(self, session: SessionSource, alg: str) -> tuple[str, Any]:
        """``(kid, cryptography private key)`` of the active key for ``alg``.

        On a database without keys, makes the key set in ``session`` (flushed: it is committed
        with the caller's transaction, and not cached until then). ``session`` may be a function
        giving the session, called only when the key is read (at most every ``ttl`` seconds):
        a client-credentials token then opens no database session at all.

        :raise TokenKeyError: the algorithm is not ours.
        """
        if alg not in PURPOSES:
            raise TokenKeyError(f"unsupported algorithm {alg}", code="token_key_algorithm")
        now = time.monotonic()
        cached = self._active.get(alg)
        if cached is not None and now - cached[0] <= self.ttl:
            return cached[1], cached[2]
        if callable(session):
            session = session()
        store = key_store(session, self.kek)
        row = store.active(PURPOSES[alg], create=False)
        if row is None:  # a fresh database: make the key set (and its next key)
            ensure_keys(session, self.kek)
            row = store.active(PURPOSES[alg], create=False)
            return row.kid, store.private_key(row.kid)
        cached = (now, row.kid, store.private_key(row.kid))
        with self._lock:
            self._active[alg] = cached
        return cached[1], cached[2]

    def forget_active(self) -> None:
        self._active.clear()


# -- minting ------------------------------------------------------------------------------
def new_jti() -> str:
    return secrets.token_urlsafe(18)


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def access_token_claims(*, issuer: str, subject: str, audience: list[str], client_id: str, scope: str,
                        lifetime: int, auth_time: datetime | None = None, acr: int | None = None,
                        amr: list[str] | None = None, extra: dict[str, Any] | None = None,
                        now: int | None = None) -> dict[str, Any]:
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer, "sub": subject, "aud": audience[0] if len(audience) == 1 else list(audience),
        "client_id": client_id, "scope": scope, "iat": now, "nbf": now, "exp": now + lifetime, "jti": new_jti(),
    }
    if auth_time is not None:
        claims["auth_time"] = _ts(auth_time)
    if acr is not None:
        claims["acr"] = acr_for(acr)
    if amr:
        claims["amr"] = list(amr)
    if extra:
        claims.update(extra)
    return claims


def sign(keys: SigningKeys, session: SessionSource, claims: dict[str, Any], *, alg: str = ES256,
         typ: str = "at+jwt") -> str:
    kid, key = keys.signing_key(session, alg)
    return sign_compact({"alg": alg, "typ": typ, "kid": kid}, claims, key)


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` (OIDC core §3.1.3.6): left half of SHA-256, base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()  # ES256 and RS256 both use SHA-256
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def id_token_claims(*, issuer: str, subject: str, client_id: str, auth_time: datetime, acr: int,
                    amr: list[str], nonce: str | None, access_token: str | None, alg: str,
                    session_id: str | None, user_claims: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    claims = {k: v for k, v in user_claims.items() if k not in ("acr",)}
    claims.update({"iss": issuer, "sub": subject, "aud": client_id, "azp": client_id, "iat": now,
                   "exp": now + ID_TOKEN_LIFETIME, "auth_time": _ts(auth_time), "acr": acr_for(acr)})
    if amr:
        claims["amr"] = list(amr)
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        claims["at_hash"] = half_hash(access_token, alg)
    if session_id:
        claims["sid"] = session_id
    return claims


# -- assurance levels as acr values (written by identity.accounts.acr_for) ----------------
ACR_VALUES = tuple(acr_for(level) for level in LEVELS)


def acr_level(value: str | None) -> int | None:
    """Parse an ``acr`` / ``acr_values`` entry ("urn:xsn:acr:L3", "L3" or "3"); ``None`` if not ours."""
    if not value:
        return None
    text = value.strip().removeprefix("urn:xsn:acr:").lower().removeprefix("l")
    return int(text) if text in ("1", "2", "3", "4") else None


# -- reading our own tokens ---------------------------------------------------------------
class LocalKeys:
    """Public keys of our own key table by ``kid`` (the ``jwks`` of the shared verifier).

    Read from the table by kid on a miss, rather than a whole-JWKS refresh: a key rotated in
    a moment ago is found at once, and an unknown kid costs one primary-key lookup.
    """

    def __init__(self, session_factory: Callable[[], Any]) -> None:
        self.session_factory = session_factory
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, kid: str) -> Any | None:
        key = self._keys.get(kid)
        if key is None:
            with self.session_factory() as session:
                row = session.get(SigningKey, kid)
                if row is None or row.purpose not in PURPOSES.values():
                    return None
                cls = ECKey if row.algorithm == ES256 else RSAKey
                key = cls.import_key(row.public_pem.encode(), {"kid": kid})
            with self._lock:
                self._keys[kid] = key
        return key


class LocalVerifier:
    """The shared verifier over identity's own key table, plus identity's revocation check.

    ``audience=None`` (introspection, revocation) accepts a token for any of our services;
    ``leeway`` is 0 here because identity answers about its own clock.
    """

    def __init__(self, *, issuer: Callable[[], str], audience: str | None, keys: LocalKeys,
                 current_session: Callable[[], Session], leeway: int = 0) -> None:
        self.jwks = keys
        self.issuer = issuer  # read per call: the public base URL is configuration, set after start-up too
        self.audience = audience
        self.leeway = leeway
        self.current_session = current_session

    def for_audience(self, audience: str | None, *, leeway: int = 0) -> LocalVerifier:
        return LocalVerifier(issuer=self.issuer, audience=audience, keys=self.jwks,
                             current_session=self.current_session, leeway=leeway)

    def verify(self, token: str) -> dict[str, Any]:
        """:raise InvalidToken: anything the shared verifier refuses, or revoked (``token_revoked``)."""
        shared = TokenVerifier(issuer=self.issuer(), audience=self.audience, jwks=self.jwks,  # type: ignore[arg-type]
                               leeway=self.leeway)
        claims = shared.verify(token)
        if is_revoked(self.current_session(), claims):
            raise InvalidToken("the token was revoked", code="token_revoked")
        return claims

    def verify_signature(self, token: str, *, types: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Claims of a JWS signed by one of our keys; nothing else is checked (for an expired
        ``id_token_hint``). :raise InvalidToken: malformed, unknown key, bad signature."""
        return verify_compact(token, self.jwks.get, types=types)
