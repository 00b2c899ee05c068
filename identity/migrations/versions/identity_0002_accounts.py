"""Accounts: people (encrypted PII + blind indexes), assurance events, organisations and
their members, staff grants, login sessions, password resets, the notifier outbox.

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("id_number_enc", sa.Text(), nullable=False),
        sa.Column("id_number_index", sa.String(64), nullable=False),
        sa.Column("mobile_enc", sa.Text(), nullable=True),
        sa.Column("mobile_index", sa.String(64), nullable=True),
        sa.Column("assurance_level", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("totp_secret_enc", sa.Text(), nullable=True),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("id_number_index", name=op.f("uq_people_id_number_index")),
    )
    op.create_index(op.f("ix_people_mobile_index"), "people", ["mobile_index"])

    op.create_table(
        "assurance_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("from_level", sa.Integer(), nullable=False),
        sa.Column("to_level", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name=op.f("fk_assurance_events_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assurance_events")),
    )
    op.create_index(op.f("ix_assurance_events_person_id"), "assurance_events", ["person_id"])

    op.create_table(
        "organisations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("credit_code", sa.String(18), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("credit_code", name=op.f("uq_organisations_credit_code")),
    )

    op.create_table(
        "organisation_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE",
                                name=op.f("fk_organisation_members_organisation_id_organisations")),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name=op.f("fk_organisation_members_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_members")),
        sa.UniqueConstraint("organisation_id", "person_id", "role",
                            name="uq_organisation_members_org_person_role"),
    )
    op.create_index(op.f("ix_organisation_members_person_id"), "organisation_members", ["person_id"])

    op.create_table(
        "staff_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("department", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.String(512), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name=op.f("fk_staff_grants_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_grants")),
    )
    op.create_index(op.f("ix_staff_grants_person_id"), "staff_grants", ["person_id"])

    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("auth_time", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("acr", sa.Integer(), nullable=False),
        sa.Column("amr", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(255), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name=op.f("fk_login_sessions_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
    )
    op.create_index(op.f("ix_login_sessions_person_id"), "login_sessions", ["person_id"])

    op.create_table(
        "password_resets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name=op.f("fk_password_resets_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_resets_token_hash")),
    )
    op.create_index(op.f("ix_password_resets_person_id"), "password_resets", ["person_id"])

    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(32), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient_masked", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="SET NULL",
                                name=op.f("fk_outbox_messages_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(op.f("ix_outbox_messages_person_id"), "outbox_messages", ["person_id"])


def downgrade() -> None:
    for table in ("outbox_messages", "password_resets", "login_sessions", "staff_grants",
                  "organisation_members"):
        op.drop_index(op.f(f"ix_{table}_person_id"), table_name=table)
        op.drop_table(table)
    op.drop_table("organisations")
    op.drop_index(op.f("ix_assurance_events_person_id"), table_name="assurance_events")
    op.drop_table("assurance_events")
    op.drop_index(op.f("ix_people_mobile_index"), table_name="people")
    op.drop_table("people")
