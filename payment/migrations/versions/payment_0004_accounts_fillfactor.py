"""Ledger accounts keep nine tenths of each page free (fillfactor 10): a balance update is then a
HOT update on its own page instead of a new row version, and index entry, at the table's end.

Why (docs/ARCHITECTURE.md, payment, "Ledger accounts' pages"): every transfer rewrites its
accounts' rows; on pages filled to 100% the new version found no room whenever pruning had not
just made some (it needs the page unpinned by other backends and the old versions older than
every snapshot), so it went to another page, found through the free-space map, which only VACUUM
updates: with autovacuum off or behind, to a new page at the table's end, each time. Four
writers, 1,000 accounts, 90 s: 13 -> 124 pages (0.63% of updates not HOT); with fillfactor 10,
143 pages throughout and every update HOT (the docs give the probe and the other runs). (A long
transaction anywhere on the server still stops pruning and grows the table, whatever the
fillfactor: see the docs.)

PostgreSQL only; the rows already stored keep their pages until they next move (or a
``VACUUM FULL ledger_accounts`` at a quiet moment rewrites them at once). SQLite has no such
setting.

Revision ID: payment_0004
Revises: payment_0003
Create Date: 2026-12-07
"""

from alembic import op

revision = "payment_0004"
down_revision = "payment_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # SHARE UPDATE EXCLUSIVE: reads and balance updates go on while it runs.
        op.execute("ALTER TABLE ledger_accounts SET (fillfactor = 10)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_accounts RESET (fillfactor)")
