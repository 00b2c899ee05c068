"""The ledger's write path: every kind of transfer, replays, limits, all-or-nothing batches."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from common.errors import NotFound
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.transfers import (
    AccountSpec,
    LedgerError,
    TransferConflict,
    TransferSpec,
    balance,
    create_transfer,
    create_transfers,
    open_account,
)
from tests.payment.conftest import open_test_accounts


@pytest.fixture
def ledger(session):
    open_test_accounts(session)
    return session


def _sums(session, account_id):
    session.expire_all()
    return balance(session.get(LedgerAccount, account_id))


def test_a_single_transfer_moves_both_sides_and_the_ledger_balances(ledger):
    result = create_transfer(ledger, TransferSpec("t1", "bank", "clearing", 500, "payment"))
    ledger.commit()
    assert result.created
    assert _sums(ledger, "bank")["debits_posted"] == 500
    assert _sums(ledger, "clearing")["credits_posted"] == 500
    assert check_ledger(ledger).ok


def test_a_replay_returns_the_first_result_and_moves_nothing(ledger):
    create_transfer(ledger, TransferSpec("t1", "bank", "clearing", 500, "payment", reference="n1"))
    ledger.commit()
    again = create_transfer(ledger, TransferSpec("t1", "bank", "clearing", 500, "payment", reference="n1"))
    ledger.commit()
    assert not again.created and again.transfer.amount == 500
    assert _sums(ledger, "bank")["debits_posted"] == 500


def test_the_same_id_with_other_fields_is_refused(ledger):
    create_transfer(ledger, TransferSpec("t1", "bank", "clearing", 500, "payment"))
    ledger.commit()
    with pytest.raises(TransferConflict) as raised:
        create_transfer(ledger, TransferSpec("t1", "bank", "clearing", 501, "payment"))
    assert raised.value.code == "transfer_exists_with_different_fields"
    ledger.rollback()
    assert _sums(ledger, "bank")["debits_posted"] == 500


def test_an_account_limit_refuses_and_leaves_nothing(ledger):
    with pytest.raises(LedgerError) as raised:
        create_transfer(ledger, TransferSpec("t1", "clearing", "revenue", 100, "payment"))
    assert raised.value.code == "exceeds_credits"
    ledger.commit()
    assert ledger.scalar(select(LedgerTransfer.id).where(LedgerTransfer.id == "t1")) is None
    assert _sums(ledger, "clearing")["debits_posted"] == 0


def test_credits_limit(ledger):
    with pytest.raises(LedgerError) as raised:
        create_transfer(ledger, TransferSpec("t1", "revenue", "bank", 100, "settlement"))
    assert raised.value.code == "exceeds_debits"


def test_a_batch_is_all_or_nothing(ledger):
    specs = [TransferSpec("a", "bank", "clearing", 300, "payment"),
             TransferSpec("b", "clearing", "revenue", 200, "payment"),
             TransferSpec("c", "clearing", "revenue", 200, "payment")]  # 400 out of 300: refused
    with pytest.raises(LedgerError) as raised:
        create_transfers(ledger, specs)
    assert raised.value.extra["index"] == 2
    ledger.commit()
    assert ledger.scalars(select(LedgerTransfer)).all() == []
    assert _sums(ledger, "bank")["debits_posted"] == 0
    assert check_ledger(ledger).ok


def test_pending_then_post_part_releases_the_rest(ledger):
    create_transfer(ledger, TransferSpec("p", "bank", "clearing", 1000, "payment", kind="pending"))
    assert _sums(ledger, "bank")["debits_pending"] == 1000
    create_transfer(ledger, TransferSpec("p-post", "bank", "clearing", 600, "payment", kind="post", pending_id="p"))
    ledger.commit()
    bank = _sums(ledger, "bank")
    assert (bank["debits_pending"], bank["debits_posted"]) == (0, 600)
    assert ledger.get(LedgerTransfer, "p").status == "posted"
    assert check_ledger(ledger).ok


def test_a_pending_transfer_resolves_once(ledger):
    create_transfer(ledger, TransferSpec("p", "bank", "clearing", 1000, "payment", kind="pending"))
    create_transfer(ledger, TransferSpec("v", "bank", "clearing", 1000, "payment", kind="void", pending_id="p"))
    ledger.commit()
    with pytest.raises(LedgerError) as raised:
        create_transfer(ledger, TransferSpec("p2", "bank", "clearing", 1000, "payment", kind="post", pending_id="p"))
    assert raised.value.code == "pending_transfer_already_voided"
    ledger.rollback()
    assert _sums(ledger, "bank")["debits_pending"] == 0 and _sums(ledger, "bank")["debits_posted"] == 0


@pytest.mark.parametrize(("spec", "code"), [
    (TransferSpec("x", "bank", "clearing", 0, "payment"), "invalid_amount"),
    (TransferSpec("x", "bank", "clearing", -5, "payment"), "invalid_amount"),
    (TransferSpec("x", "bank", "clearing", 1.5, "payment"), "invalid_amount"),
    (TransferSpec("x", "bank", "bank", 5, "payment"), "same_account"),
    (TransferSpec("x", "bank", "clearing", 5, "gift"), "unknown_transfer_code"),
    (TransferSpec("", "bank", "clearing", 5, "payment"), "invalid_transfer_id"),
    (TransferSpec("x", "bank", "clearing", 5, "payment", kind="post"), "invalid_pending_id"),
])
def test_malformed_transfers_are_refused(ledger, spec, code):
    with pytest.raises(LedgerError) as raised:
        create_transfer(ledger, spec)
    assert raised.value.code == code


def test_a_missing_account_is_not_found_and_writes_nothing(ledger):
    with pytest.raises(NotFound):
        create_transfer(ledger, TransferSpec("x", "bank", "nowhere", 5, "payment"))
    ledger.commit()
    assert ledger.scalar(select(LedgerTransfer.id).where(LedgerTransfer.id == "x")) is None


def test_the_check_finds_a_balance_edited_behind_the_ledgers_back(ledger):
    create_transfer(ledger, TransferSpec("t1", "bank", "clearing", 500, "payment"))
    ledger.commit()
    ledger.execute(update(LedgerAccount).where(LedgerAccount.id == "clearing").values(credits_posted=900))
    ledger.commit()
    report = check_ledger(ledger)
    assert not report.ok
    assert any("clearing: credits_posted is 900, the journal says 500" in f for f in report.findings)
    assert any("posted debits 500 != posted credits 900" in f for f in report.findings)


def test_open_account_is_idempotent_but_refuses_other_flags(ledger):
    assert open_account(ledger, AccountSpec("bank", "channel_receivable", "bank", credits_must_not_exceed_debits=True))
    with pytest.raises(LedgerError):
        open_account(ledger, AccountSpec("bank", "channel_receivable", "bank"))


def test_accounts_are_locked_in_code_point_order_as_python_sorts_them(ledger):
    """payment.ledger.transfers.account_order: on PostgreSQL every locking read of the accounts
    orders ids by code point (``COLLATE "C"``), as ``sorted`` does on the exact path, whatever the
    database's own collation (under en_US.utf8 ``payer:x`` and ``payer_clearing`` sort the other way
    round; CI's database is C.UTF-8, where the two agree anyway, so the statements sent are checked:
    the session path's locking reads (``_lock_accounts``, ``hold_accounts``), caught as they are sent, and the one
    statement's text)."""
    from payment.ledger import one_statement, transfers
    from tests.conftest import need
    from tests.payment.lock_waits import LOCKING_READ, sent_statements

    if ledger.get_bind().dialect.name != "postgresql":  # SQLite has no locking reads (it locks the database)
        need("XSN_TEST_DATABASE_URL (PostgreSQL)")
    with sent_statements(ledger) as sent:
        assert set(transfers._lock_accounts(ledger, {"bank", "clearing", "revenue"})) == {"bank", "clearing", "revenue"}
        ledger.rollback()
        transfers.hold_accounts(ledger, {"bank", "clearing", "revenue"})  # the exact path's and a group's
    locking = [s for s, _ in sent if "FOR NO KEY UPDATE" in s or "FOR UPDATE" in s]
    assert len(locking) == 2, sent
    assert all(LOCKING_READ in s for s in locking), locking
    assert 'ORDER BY a.id COLLATE "C"' in one_statement._WRITE_NEW
