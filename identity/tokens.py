"""Token-signing keys with rotation, RFC 9068 JWT access tokens and OIDC ID tokens.

Keys live in the ``signing_keys`` table (SM4-GCM sealed under the KEK, as in
:mod:`common.crypto.keystore`), one set per algorithm (``oauth-es256``, ``oauth-rs256``). Each set
has one ``active`` key that signs, one ``next`` key that is already published in the JWKS
but not yet used, and ``retired`` keys kept published until every token they signed has
expired. ``rotate`` promotes ``next`` to ``active``: verifiers that cached the JWKS since the
previous rotation already know the new key, so no token is ever signed by an unpublished key.

Each process keeps the decrypted private key per ``kid`` (decrypting per request would cost
more than signing) and re-reads which kid is active at most every ``ACTIVE_KEY_TTL`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto.gm import sm4_gcm_decrypt, sm4_gcm_encrypt
from common.db import utcnow
from common.errors import Problem
from identity.accounts import LEVELS, acr_for
from identity.oauth_models import RevokedAccessToken, SigningKey

ACTIVE, NEXT, RETIRED = "active", "next", "retired"
PURPOSES = {"ES256": "oauth-es256", "RS256": "oauth-rs256"}
ACTIVE_KEY_TTL = 30.0
# Retired keys stay in the JWKS this long: longer than any access or ID token lives.
RETIRED_KEY_RETENTION = timedelta(days=2)
ID_TOKEN_LIFETIME = 600


class TokenKeyError(Problem):
    status, code, title = 500, "token_key_error", "Token signing key error"


class InvalidAccessToken(Problem):
    status, code, title = 401, "invalid_token", "Invalid access token"


# -- keys ---------------------------------------------------------------------------------
def _generate(session: Session, kek: bytes, alg: str, status: str) -> SigningKey:
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECKey.import_key(private)
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAKey.import_key(private)
    else:
        raise TokenKeyError(f"unsupported algorithm {alg}", code="token_key_algorithm")
    kid = jwk.thumbprint()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    # Same sealing as common.crypto.keystore: the kid is the GCM associated data.
    sealed = sm4_gcm_encrypt(kek, pem, kid.encode())
    row = SigningKey(kid=kid, purpose=PURPOSES[alg], algorithm=alg, status=status, public_pem=public_pem.decode(),
                     encrypted_private=base64.b64encode(sealed).decode(), created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def _rows(session: Session, alg: str, status: str | None = None) -> list[SigningKey]:
    query = select(SigningKey).where(SigningKey.purpose == PURPOSES[alg])
    if status:
        query = query.where(SigningKey.status == status)
    return list(session.scalars(query.order_by(SigningKey.created_at, SigningKey.kid)))


def ensure_keys(session: Session, kek: bytes) -> None:
    """Make sure each algorithm has an active and a next key; flushes, the caller commits."""
    for alg in PURPOSES:
        if not _rows(session, alg, ACTIVE):
            _generate(session, kek, alg, ACTIVE)
        if not _rows(session, alg, NEXT):
            _generate(session, kek, alg, NEXT)


def rotate_keys(session: Session, kek: bytes, alg: str = "ES256") -> SigningKey:
    """Promote the published ``next`` key to ``active``, retire the old one, publish a new next.

    Returns the newly active key; flushes, the caller commits.
    """
    ensure_keys(session, kek)
    now = utcnow()
    for row in _rows(session, alg, ACTIVE):
        row.status, row.retired_at = RETIRED, now
    promoted = _rows(session, alg, NEXT)[0]
    promoted.status = ACTIVE
    session.flush()
    _generate(session, kek, alg, NEXT)
    return promoted


def public_jwk(row: SigningKey) -> dict[str, Any]:
    cls = ECKey if row.algorithm == "ES256" else RSAKey
    key = cls.import_key(row.public_pem.encode())
    return {**key.as_dict(private=False), "kid": row.kid, "use": "sig", "alg": row.algorithm}


def published_keys(session: Session) -> list[SigningKey]:
    cutoff = utcnow() - RETIRED_KEY_RETENTION
    rows = session.scalars(select(SigningKey).where(SigningKey.purpose.in_(PURPOSES.values()))
                           .order_by(SigningKey.created_at, SigningKey.kid))
    return [r for r in rows if r.status != RETIRED or (r.retired_at and r.retired_at > cutoff)]


def jwks_document(session: Session) -> dict[str, Any]:
    return {"keys": [public_jwk(row) for row in published_keys(session)]}


class KeyCache:
    """Per-process cache of decrypted signing keys (by kid) and of the active kid per alg."""

    def __init__(self, kek: bytes, *, ttl: float = ACTIVE_KEY_TTL) -> None:
        self.kek = kek
        self.ttl = ttl
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}
        self._active: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def signing_key(self, session: Session, alg: str) -> tuple[str, Any]:
        """``(kid, joserfc private key)`` of the active key for ``alg``.

        :raise TokenKeyError: no active key (run migrations and ``xsn seed`` / ``keys rotate``).
        """
        now = time.monotonic()
        cached = self._active.get(alg)
        if cached is None or now - cached[0] > self.ttl:
            rows = _rows(session, alg, ACTIVE)
            if not rows:
                ensure_keys(session, self.kek)
                session.commit()
                rows = _rows(session, alg, ACTIVE)
            cached = (now, rows[-1].kid)
            self._active[alg] = cached
        kid = cached[1]
        key = self._private.get(kid)
        if key is None:
            row = session.get(SigningKey, kid)
            if row is None:
                raise TokenKeyError(f"signing key {kid} vanished", code="token_key_missing")
            pem = sm4_gcm_decrypt(self.kek, base64.b64decode(row.encrypted_private), kid.encode())
            cls = ECKey if alg == "ES256" else RSAKey
            key = cls.import_key(pem, {"kid": kid})
            with self._lock:
                self._private[kid] = key
        return kid, key

    def public_key(self, session: Session, kid: str) -> Any | None:
        key = self._public.get(kid)
        if key is None:
            row = session.get(SigningKey, kid)
            if row is None or row.purpose not in PURPOSES.values():
                return None
            cls = ECKey if row.algorithm == "ES256" else RSAKey
            key = cls.import_key(row.public_pem.encode(), {"kid": kid})
            with self._lock:
                self._public[kid] = key
        return key

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


def sign(keys: KeyCache, session: Session, claims: dict[str, Any], *, alg: str = "ES256",
         typ: str = "at+jwt") -> str:
    kid, key = keys.signing_key(session, alg)
    return jwt.encode({"alg": alg, "typ": typ, "kid": kid}, claims, key, algorithms=[alg])


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


# -- reading our own access tokens (introspection, userinfo, revocation) -----------------
def verify_signature(keys: KeyCache, session: Session, token: str, *, typ: str | None = None) -> dict[str, Any]:
    """Claims of a JWS signed by one of our keys (and of header ``typ``, when given); nothing
    else is checked: not ``iss``, not time, not revocation.

    :raise InvalidAccessToken: malformed, another ``alg``/``typ``, an unknown key, a bad signature.
    """
    try:
        header = jws.extract_compact(token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidAccessToken("not a compact JWS") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in PURPOSES or (typ is not None and header.get("typ") != typ) or not isinstance(kid, str):
        raise InvalidAccessToken("not one of our access tokens")
    key = keys.public_key(session, kid)
    if key is None:
        raise InvalidAccessToken("unknown signing key")
    try:
        return jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError) as exc:
        raise InvalidAccessToken("bad signature") from exc


def decode_access_token(keys: KeyCache, session: Session, token: str, *, issuer: str,
                        leeway: int = 0) -> dict[str, Any]:
    """Verify an access token we issued: signature by one of our keys, ``typ``, ``iss``, time,
    and not revoked.

    :raise InvalidAccessToken: anything is wrong.
    """
    claims = verify_signature(keys, session, token, typ="at+jwt")
    now = time.time()
    if claims.get("iss") != issuer:
        raise InvalidAccessToken("wrong issuer")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now - leeway:
        raise InvalidAccessToken("expired", code="token_expired")
    if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + leeway:
        raise InvalidAccessToken("not yet valid")
    if session.get(RevokedAccessToken, str(claims.get("jti"))) is not None:
        raise InvalidAccessToken("revoked", code="token_revoked")
    return claims


def revoke_access_jti(session: Session, jti: str, expires_at: datetime) -> None:
    """Record a revoked access token (idempotent); flushes."""
    if session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=expires_at, revoked_at=utcnow()))
        session.flush()
