"""Federation logins in progress kept server-side (PKCE verifier and nonce out of the cookie);
authorization codes findable by (client, nonce) for nonce-replay checks.

Revision ID: identity_0004
Revises: identity_0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "identity_0004"
down_revision = "identity_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_pending",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("next_url", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_federation_pending"),
    )
    op.create_index("ix_federation_pending_expires_at", "federation_pending", ["expires_at"])
    op.create_index("ix_oauth_authorization_codes_client_id_nonce", "oauth_authorization_codes",
                    ["client_id", "nonce"])


def downgrade() -> None:
    op.drop_index("ix_oauth_authorization_codes_client_id_nonce", table_name="oauth_authorization_codes")
    op.drop_table("federation_pending")
