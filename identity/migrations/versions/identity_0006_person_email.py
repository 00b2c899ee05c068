"""An optional e-mail address per person (SM4-GCM ciphertext, like the mobile number), for the
message hub's e-mail channel and the OIDC ``email`` claim.

Revision ID: identity_0006
Revises: identity_0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "identity_0006"
down_revision = "identity_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("email_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.drop_column("email_enc")
