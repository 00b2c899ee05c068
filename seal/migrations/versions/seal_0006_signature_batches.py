"""Batch signing: ``signature_batches`` (one idempotency key per batch) and each signature's place in it.

Revision ID: seal_0006
Revises: seal_0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "seal_0006"
down_revision = "seal_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signature_batches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("seal_id", sa.String(32), nullable=False),
        sa.Column("signer", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("idempotency_scope", sa.String(255), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], ondelete="CASCADE",
                                name=op.f("fk_signature_batches_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_batches")),
        sa.UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_signature_batches_idempotency"),
    )
    with op.batch_alter_table("signatures") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("batch_position", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_signatures_batch_id_signature_batches"), "signature_batches",
                                 ["batch_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_signatures_batch_id_batch_position", ["batch_id", "batch_position"])


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_index("ix_signatures_batch_id_batch_position")
        batch.drop_constraint(op.f("fk_signatures_batch_id_signature_batches"), type_="foreignkey")
        batch.drop_column("batch_position")
        batch.drop_column("batch_id")
    op.drop_table("signature_batches")
