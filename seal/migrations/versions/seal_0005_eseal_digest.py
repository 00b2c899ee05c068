"""Seals: ``eseal_sm3``, the SM3 of the stored ``SESeal`` DER (the seal version the signing path caches).

Revision ID: seal_0005
Revises: seal_0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from common.crypto.gm import sm3

revision = "seal_0005"
down_revision = "seal_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seals") as batch:
        batch.add_column(sa.Column("eseal_sm3", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    for seal_id, der in conn.execute(sa.text("SELECT id, eseal_der FROM seals")).fetchall():
        conn.execute(sa.text("UPDATE seals SET eseal_sm3 = :digest WHERE id = :id"),
                     {"digest": sm3(bytes(der)).hex(), "id": seal_id})
    with op.batch_alter_table("seals") as batch:
        batch.alter_column("eseal_sm3", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("seals") as batch:
        batch.drop_column("eseal_sm3")
