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
    # A chunk's frame is all that says its lines were signed under their key: the older runner
    # would reserve those lines again under other keys (signing them twice) or, with the same
    # key, send the seal node other documents. Finish such jobs first (a failed job, never run
    # again, may keep its frames).
    jobs = sa.table("bulk_jobs", sa.column("id", sa.String), sa.column("status", sa.String),
                    sa.column("chunks", sa.JSON))
    busy = [job_id for job_id, chunks in op.get_bind().execute(
        sa.select(jobs.c.id, jobs.c.chunks).where(jobs.c.chunks.is_not(None),
                                                  jobs.c.status.in_(("validated", "running")))) if chunks]
    if busy:
        raise RuntimeError(f"bulk jobs {', '.join(busy)} have chunks being sealed: run them to the end "
                           "before downgrading below licenses_0004")
    with op.batch_alter_table("bulk_jobs") as batch:
        batch.drop_column("chunks")
