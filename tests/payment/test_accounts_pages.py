"""The ledger accounts' pages (PostgreSQL): a balance update stays on its row's page (a HOT
update) even when none of the versions it replaces can be pruned yet, which on pages filled to
100% left it no room, so the table does not grow between vacuums (migration payment_0004;
docs/ARCHITECTURE.md, payment)."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from common.db import get_db, utcnow
from common.ops.migrate import downgrade, upgrade
from payment.ledger import one_statement
from payment.ledger.transfers import AccountSpec, TransferSpec, open_account
from tests.conftest import need

ACCOUNTS = 100  # more than one page of rows at fillfactor 100 (77 a page)


def test_every_balance_update_is_a_hot_update(app, session):
    if get_db(app).engine.dialect.name != "postgresql":
        need("XSN_TEST_DATABASE_URL (PostgreSQL): HOT updates are PostgreSQL's")
    for i in range(ACCOUNTS):
        open_account(session, AccountSpec(f"a{i:03}", "suspense", f"account {i}"))
    session.commit()
    # One transaction touching every account once: none of the versions it replaces can be
    # pruned yet, so on a page filled to 100% the new version has no room (not HOT: a new index
    # entry and a new page at the table's end while nothing vacuums).
    specs = [TransferSpec(f"t{i}", f"a{i:03}", f"a{i + 1:03}", 1, "adjustment") for i in range(0, ACCOUNTS, 2)]
    assert not isinstance(one_statement.write_new(session.connection(), specs, now=utcnow()), one_statement.Refusal)
    updated, hot = session.execute(text(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'ledger_accounts'")).one()
    assert (updated, hot) == (ACCOUNTS, ACCOUNTS)
    session.rollback()


def test_the_migration_sets_the_fillfactor_and_its_downgrade_resets_it(databases, postgres_url):
    url = databases.fresh("payment")

    def reloptions():
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return connection.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'ledger_accounts'"))
        finally:
            engine.dispose()

    assert reloptions() == ["fillfactor=10"]
    downgrade("payment", url, "payment_0003")
    assert reloptions() is None
    upgrade("payment", url)
    assert reloptions() == ["fillfactor=10"]
