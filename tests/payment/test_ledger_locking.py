"""When the ledger's write paths take the accounts' locking read, and when they skip it
(PostgreSQL; SQLite has no locking reads). Counted from the statements sent: the locking read is
``transfers._lock_accounts``'s or ``transfers.hold_accounts``'s, not the one statement's own."""

from __future__ import annotations

import pytest

from common.db import get_db
from payment.ledger import group_write, transfers
from payment.ledger.models import LedgerAccount
from payment.ledger.transfers import TransferSpec, create_transfers
from tests.conftest import need
from tests.payment.conftest import open_test_accounts
from tests.payment.lock_waits import LOCKING_READ, sent_statements


@pytest.fixture
def ledger(app, session):
    if get_db(app).engine.dialect.name != "postgresql":
        need("XSN_TEST_DATABASE_URL (PostgreSQL): row locks are PostgreSQL's")
    open_test_accounts(session)
    create_transfers(session, [TransferSpec("new", "bank", "clearing", 10, "payment"),
                               TransferSpec("q", "bank", "clearing", 10, "payment", kind="pending"),
                               TransferSpec("r", "bank", "clearing", 10, "payment", kind="pending")])
    create_transfers(session, [TransferSpec("x", "bank", "clearing", 10, "payment", kind="post", pending_id="q")])
    create_transfers(session, [TransferSpec("v", "bank", "clearing", 10, "payment", kind="void", pending_id="r")])
    session.commit()
    return session


def _locking_reads(sent) -> list:
    return [(statement, parameters) for statement, parameters in sent if LOCKING_READ in statement]


@pytest.mark.parametrize(("spec", "reads"), [
    (TransferSpec("new", "bank", "clearing", 10, "payment"), 0),  # plainly new: claims nothing, moves nothing
    (TransferSpec("x", "bank", "clearing", 10, "payment", kind="post", pending_id="q"), 1),
    (TransferSpec("v", "bank", "clearing", 10, "payment", kind="void", pending_id="r"), 1),
], ids=["plainly new", "post", "void"])
def test_a_replay_locks_its_accounts_unless_it_is_plainly_new(ledger, spec, reads):
    with sent_statements(ledger) as sent:
        assert [r.created for r in create_transfers(ledger, [spec])] == [False]
    assert len(_locking_reads(sent)) == reads, sent


def test_a_group_of_one_request_takes_no_group_wide_lock(ledger):
    with sent_statements(ledger) as sent:
        outcomes = group_write.write_requests(ledger, [[TransferSpec("g1", "revenue", "clearing", 1, "payment")]])
    assert [[r.created for r in outcome] for outcome in outcomes] == [[True]]
    assert _locking_reads(sent) == [], sent


def test_a_group_of_two_requests_locks_every_account_once_first(ledger):
    with sent_statements(ledger) as sent:
        outcomes = group_write.write_requests(ledger, [[TransferSpec("g1", "revenue", "clearing", 1, "payment")],
                                                       [TransferSpec("g2", "bank", "clearing", 1, "payment")]])
    assert [[r.created for r in outcome] for outcome in outcomes] == [[True], [True]]
    reads = _locking_reads(sent)
    assert len(reads) == 1, sent
    first_savepoint = next(i for i, (statement, _) in enumerate(sent) if statement.startswith("SAVEPOINT"))
    assert sent.index(reads[0]) < first_savepoint, sent
    assert sorted(reads[0][1].values() if isinstance(reads[0][1], dict) else reads[0][1]) == [
        "bank", "clearing", "revenue"]


def test_hold_accounts_writes_the_pending_rows_before_it_locks(ledger):
    """As the ORM locking read (which autoflushes) does: the same order on every path."""
    ledger.add(LedgerAccount(id="late", kind="suspense", name="late", debits_must_not_exceed_credits=False,
                             credits_must_not_exceed_debits=False, debits_pending=0, debits_posted=0,
                             credits_pending=0, credits_posted=0))  # pending, not flushed
    with sent_statements(ledger) as sent:
        transfers.hold_accounts(ledger, {"bank", "late"})
    statements = [statement for statement, _ in sent]
    inserted = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO ledger_accounts"))
    locked = next(i for i, s in enumerate(statements) if LOCKING_READ in s)
    assert inserted < locked, statements
