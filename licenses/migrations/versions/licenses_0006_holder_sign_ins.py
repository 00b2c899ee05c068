"""Holders' page sign-ins (common.web.console_login): flows in progress and signed-in holders.

Revision ID: licenses_0006
Revises: licenses_0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "licenses_0006"
down_revision = "licenses_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_logins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("console", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_path", sa.String(length=1024), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_console_logins")),
    )
    op.create_index(op.f("ix_console_logins_expires_at"), "console_logins", ["expires_at"])
    op.create_table(
        "console_sessions",
        sa.Column("handle_hash", sa.String(length=64), nullable=False),
        sa.Column("console", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("id_token", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("handle_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_expires_at"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index(op.f("ix_console_logins_expires_at"), table_name="console_logins")
    op.drop_table("console_logins")
