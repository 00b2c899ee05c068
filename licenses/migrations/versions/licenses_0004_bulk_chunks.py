"""Bulk jobs: the frames of the chunks being sealed (a job's licences are written once, sealed;
an interrupted chunk is rebuilt from its frame and replayed by the seal node).

Revision ID: licenses_0004
Revises: licenses_0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "licenses_0004"
down_revision = "licenses_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.add_column(sa.Column("chunks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("chunks")
