"""OAuth 2.0 / OIDC tables of the identity service: clients, codes, refresh-token families,
revoked access-token ids, consents, federated links and the token-signing keys.

Secrets and tokens are never stored in the clear: client secrets as HMAC-SM3 under a
KEK-derived key (:mod:`identity.oauth.clients`), authorization codes and refresh tokens as
SHA-256 digests (they are 256-bit random values, so a fast unkeyed hash is enough).
Access tokens are self-contained JWTs and are not stored; revoking one records its ``jti``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.crypto.keystore import SigningKeyMixin
from common.db import utcnow
from identity.base import Base

CONFIDENTIAL, PUBLIC = "confidential", "public"


class SigningKey(SigningKeyMixin, Base):
    """Token-signing keys (purpose ``oauth-es256`` / ``oauth-rs256``), SM4-sealed at rest."""

    __tablename__ = "signing_keys"


class OAuthClient(Base):
    """A registered application or one of our own services."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    client_type: Mapped[str] = mapped_column(String(16))  # confidential | public
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    access_token_lifetime: Mapped[int] = mapped_column(Integer, default=600)
    refresh_token_lifetime: Mapped[int] = mapped_column(Integer, default=30 * 24 * 3600)
    min_acr: Mapped[int] = mapped_column(Integer, default=1)
    id_token_alg: Mapped[str] = mapped_column(String(8), default="ES256")
    skip_consent: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuthorizationCode(Base):
    __tablename__ = "oauth_authorization_codes"
    # exists_nonce: a nonce reused by the same client is a replayed authorization request.
    __table_args__ = (Index("ix_oauth_authorization_codes_client_id_nonce", "client_id", "nonce"),)

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_time: Mapped[datetime]
    acr: Mapped[int] = mapped_column(Integer)
    amr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # What the first (only legitimate) use issued: revoked when the code is replayed.
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshToken(Base):
    """One refresh token of a rotation family; each use rotates it, a replay kills the family."""

    __tablename__ = "oauth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_time: Mapped[datetime]
    acr: Mapped[int] = mapped_column(Integer)
    amr: Mapped[str] = mapped_column(String(64), default="")
    access_jti: Mapped[str] = mapped_column(String(64))
    access_expires_at: Mapped[datetime]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class RevokedAccessToken(Base):
    """A revoked JWT access token, kept until it would have expired anyway."""

    __tablename__ = "oauth_revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Consent(Base):
    """What a person allowed an app to ask for; a later request within the set skips the page."""

    __tablename__ = "oauth_consents"
    __table_args__ = (UniqueConstraint("person_id", "client_id", name="uq_oauth_consents_person_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)  # space separated, sorted
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class FederatedIdentity(Base):
    """A person's account at an upstream OpenID provider (the provincial node)."""

    __tablename__ = "federated_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_federated_identities_issuer_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    upstream_acr: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(default=utcnow)


class FederationPending(Base):
    """A login through the upstream node in progress, keyed by the SHA-256 of its ``state``.

    Kept here rather than in the (signed, readable) session cookie so the browser never sees
    the PKCE verifier or the nonce; consumed by the callback (single use), expires after minutes.
    """

    __tablename__ = "federation_pending"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
