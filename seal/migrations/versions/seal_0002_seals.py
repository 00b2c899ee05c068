"""Seals, seal history, the node CA's certificates, grants, signatures, the key store.

Revision ID: seal_0002
Revises: seal_0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "seal_0002"
down_revision = "seal_0001"
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
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_index(op.f("ix_signing_keys_purpose"), "signing_keys", ["purpose"])

    op.create_table(
        "seals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("es_id", sa.String(32), nullable=False),
        sa.Column("org_code", sa.String(18), nullable=False),
        sa.Column("org_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(255), nullable=True),
        sa.Column("status_changed_at", UTCDateTime(), nullable=True),
        sa.Column("valid_start", UTCDateTime(), nullable=False),
        sa.Column("valid_end", UTCDateTime(), nullable=False),
        sa.Column("image_png", sa.LargeBinary(), nullable=False),
        sa.Column("image_width", sa.Integer(), nullable=False),
        sa.Column("image_height", sa.Integer(), nullable=False),
        sa.Column("image_generated", sa.Boolean(), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("signer_serial", sa.String(40), nullable=False),
        sa.Column("eseal_der", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seals")),
        sa.UniqueConstraint("es_id", name=op.f("uq_seals_es_id")),
    )
    op.create_index(op.f("ix_seals_org_code"), "seals", ["org_code"])

    op.create_table(
        "seal_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seal_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], ondelete="CASCADE",
                                name=op.f("fk_seal_events_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_events")),
    )
    op.create_index(op.f("ix_seal_events_seal_id"), "seal_events", ["seal_id"])

    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("seal_id", sa.String(32), nullable=True),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revocation_reason", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], ondelete="CASCADE",
                                name=op.f("fk_certificates_seal_id_seals")),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_certificates")),
    )
    op.create_index(op.f("ix_certificates_seal_id"), "certificates", ["seal_id"])

    op.create_table(
        "seal_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seal_id", sa.String(32), nullable=False),
        sa.Column("grantee_type", sa.String(16), nullable=False),
        sa.Column("grantee", sa.String(255), nullable=False),
        sa.Column("granted_by", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], ondelete="CASCADE",
                                name=op.f("fk_seal_grants_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_grants")),
        sa.UniqueConstraint("seal_id", "grantee_type", "grantee", name="uq_seal_grants_grantee"),
    )
    op.create_index(op.f("ix_seal_grants_seal_id"), "seal_grants", ["seal_id"])

    op.create_table(
        "signatures",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("seal_id", sa.String(32), nullable=False),
        sa.Column("signer", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("idempotency_scope", sa.String(255), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("document_digest", sa.String(64), nullable=False),
        sa.Column("property_info", sa.String(255), nullable=False),
        sa.Column("signature_der", sa.LargeBinary(), nullable=False),
        sa.Column("signature_digest", sa.String(64), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], ondelete="CASCADE",
                                name=op.f("fk_signatures_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
        sa.UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_signatures_idempotency"),
        sa.UniqueConstraint("signature_digest", name=op.f("uq_signatures_signature_digest")),
    )
    op.create_index("ix_signatures_seal_id_signed_at", "signatures", ["seal_id", "signed_at"])
    op.create_index(op.f("ix_signatures_document_digest"), "signatures", ["document_digest"])


def downgrade() -> None:
    op.drop_table("signatures")
    op.drop_table("seal_grants")
    op.drop_table("certificates")
    op.drop_table("seal_events")
    op.drop_table("seals")
    op.drop_table("signing_keys")
