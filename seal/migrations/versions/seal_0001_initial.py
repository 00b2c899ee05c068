"""Initial schema of the seal service: the revision every later migration builds on.

Revision ID: seal_0001
Revises:
Create Date: 2026-11-28
"""

revision = "seal_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
