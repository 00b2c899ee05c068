"""PostgreSQL stores a signature's DER out of line without trying to compress it.

Revision ID: seal_0008
Revises: seal_0007
Create Date: 2026-12-07

Why: every ``SES_Signature`` carries the seal's PNG picture (most of its ~17 KB), which pglz
cannot shrink by the quarter it asks for, so the default ``EXTENDED`` storage spent backend
CPU on a compression attempt for every row and then stored it uncompressed anyway. ``EXTERNAL``
stores the same bytes out of line without the attempt. Only PostgreSQL has the setting.
"""

from alembic import op

revision = "seal_0008"
down_revision = "seal_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE signatures ALTER COLUMN signature_der SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE signatures ALTER COLUMN signature_der SET STORAGE EXTENDED")
