"""OAuth 2.0 / OIDC: clients, authorization codes, refresh-token families, revoked access
tokens, consents, federated identities and token-signing keys.

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("encrypted_private", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )
    op.create_index("ix_signing_keys_purpose", "signing_keys", ["purpose"])

    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_type", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.String(32), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("access_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("refresh_token_lifetime", sa.Integer(), nullable=False),
        sa.Column("min_acr", sa.Integer(), nullable=False),
        sa.Column("id_token_alg", sa.String(8), nullable=False),
        sa.Column("skip_consent", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )

    op.create_table(
        "oauth_authorization_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("code_challenge_method", sa.String(8), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("auth_time", UTCDateTime(), nullable=False),
        sa.Column("acr", sa.Integer(), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.Column("access_jti", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.client_id"], ondelete="CASCADE",
                                name="fk_oauth_authorization_codes_client_id_oauth_clients"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name="fk_oauth_authorization_codes_person_id_people"),
        sa.PrimaryKeyConstraint("code_hash", name="pk_oauth_authorization_codes"),
    )
    op.create_index("ix_oauth_authorization_codes_client_id", "oauth_authorization_codes", ["client_id"])
    op.create_index("ix_oauth_authorization_codes_person_id", "oauth_authorization_codes", ["person_id"])

    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("auth_time", UTCDateTime(), nullable=False),
        sa.Column("acr", sa.Integer(), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("access_jti", sa.String(64), nullable=False),
        sa.Column("access_expires_at", UTCDateTime(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.client_id"], ondelete="CASCADE",
                                name="fk_oauth_refresh_tokens_client_id_oauth_clients"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name="fk_oauth_refresh_tokens_person_id_people"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_oauth_refresh_tokens"),
    )
    op.create_index("ix_oauth_refresh_tokens_family_id", "oauth_refresh_tokens", ["family_id"])
    op.create_index("ix_oauth_refresh_tokens_client_id", "oauth_refresh_tokens", ["client_id"])
    op.create_index("ix_oauth_refresh_tokens_person_id", "oauth_refresh_tokens", ["person_id"])

    op.create_table(
        "oauth_revoked_access_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_oauth_revoked_access_tokens"),
    )
    op.create_index("ix_oauth_revoked_access_tokens_expires_at", "oauth_revoked_access_tokens", ["expires_at"])

    op.create_table(
        "oauth_consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.client_id"], ondelete="CASCADE",
                                name="fk_oauth_consents_client_id_oauth_clients"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name="fk_oauth_consents_person_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_consents"),
        sa.UniqueConstraint("person_id", "client_id", name="uq_oauth_consents_person_client"),
    )
    op.create_index("ix_oauth_consents_person_id", "oauth_consents", ["person_id"])

    op.create_table(
        "federated_identities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("upstream_acr", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name="fk_federated_identities_person_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_federated_identities"),
        sa.UniqueConstraint("issuer", "subject", name="uq_federated_identities_issuer_subject"),
    )
    op.create_index("ix_federated_identities_person_id", "federated_identities", ["person_id"])


def downgrade() -> None:
    op.drop_table("federated_identities")
    op.drop_table("oauth_consents")
    op.drop_table("oauth_revoked_access_tokens")
    op.drop_table("oauth_refresh_tokens")
    op.drop_table("oauth_authorization_codes")
    op.drop_table("oauth_clients")
    op.drop_table("signing_keys")
