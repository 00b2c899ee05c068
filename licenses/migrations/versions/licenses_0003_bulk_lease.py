"""Bulk jobs: the lease of the runner working on a job (one runner at a time, resumable), and
the seal batch each row's licence was sent in (a resumed batch is sent again exactly as it was).

Revision ID: licenses_0003
Revises: licenses_0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "licenses_0003"
down_revision = "licenses_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.add_column(sa.Column("runner", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))
    with op.batch_alter_table("bulk_rows") as batch:
        batch.add_column(sa.Column("batch", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bulk_rows") as batch:
        batch.drop_column("batch")
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("runner")
