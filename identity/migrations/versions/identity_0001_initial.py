"""Initial schema of the identity service: the revision every later migration builds on.

Revision ID: identity_0001
Revises:
Create Date: 2026-11-28
"""

revision = "identity_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
