"""Authorisations: who revoked one (any agent of an organisation may stop a colleague's grant),
and the names of who granted and who revoked it, as the holder's pages show them.

Rows written before have no names and no reviser: the pages show the granting subject then.

Revision ID: licenses_0007
Revises: licenses_0006
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "licenses_0007"
down_revision = "licenses_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorisations") as batch:
        batch.add_column(sa.Column("granted_by_name", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("revoked_by", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("revoked_by_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authorisations") as batch:
        batch.drop_column("revoked_by_name")
        batch.drop_column("revoked_by")
        batch.drop_column("granted_by_name")
