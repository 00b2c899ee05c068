"""Orders by status and age: the stale-order sweep (payment.close_stale_orders) finds open ones.

Revision ID: payment_0003
Revises: payment_0002
Create Date: 2026-12-06
"""

from alembic import op

revision = "payment_0003"
down_revision = "payment_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch:
        batch.create_index("ix_payment_orders_status_created", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch:
        batch.drop_index("ix_payment_orders_status_created")
