"""A signature's DER is stored once: its log entry reads it from ``signatures`` by log index.

Revision ID: seal_0007
Revises: seal_0006
Create Date: 2026-12-07

Entries written before keep their own base64 copy (``log_entries.ses_signature``); new signing
entries leave it null. Unique: a log entry is the entry of one signature at most. A downgrade
drops the index only: entries written since then show no DER to code of the earlier revision.
"""

from alembic import op

revision = "seal_0007"
down_revision = "seal_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.create_index("ix_signatures_log_index", ["log_index"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_index("ix_signatures_log_index")
