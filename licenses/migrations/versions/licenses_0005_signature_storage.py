"""Licences: PostgreSQL stores a licence's SES_Signature (``signature_b64``, ~23 KB of base64: it
embeds the seal with its picture and certificates) out of line without trying to compress it.

With the default storage, every licence written makes PostgreSQL try pglz on the signature
first; base64 of DER and an image does not compress by the 25 % pglz asks for, so the attempt
is lost: about 0.27 ms of the server's CPU per licence (measured: 2,000 rows of real signatures
by COPY, 0.40 ms per row with pglz tried, 0.13 ms with EXTERNAL, the stored size the same).
Nothing else changes: the values, their TOAST out-of-line storage, reads.

Revision ID: licenses_0005
Revises: licenses_0004
Create Date: 2026-12-07
"""

from alembic import op

revision = "licenses_0005"
down_revision = "licenses_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite has no TOAST
        op.execute("ALTER TABLE licences ALTER COLUMN signature_b64 SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE licences ALTER COLUMN signature_b64 SET STORAGE EXTENDED")
