"""Settlement and refunds across days: a refund on the payment's day is paid out of the day's
collections and netted in its settlement; a refund on a later day is a refund from the treasury
(退库), whether or not the payment's day was settled yet, and never changes a day's settlement.

Every test runs on a clock moved by hand (ledger transfers and refunds take their time from it),
and asserts the exact sums of every account involved. The notice of the fixtures is 4550 fen:
MKT-001 × 2 (2000) and MKT-003 (2550)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from payment import payments, settlement
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount, LedgerTransfer

DAY1, DAY2, DAY3 = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)


def _at(day: date, hour_utc: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour_utc, tzinfo=UTC)  # 10:00 in Beijing


@pytest.fixture
def clock(monkeypatch):
    class Clock:
        now = _at(DAY1)

    def utcnow():
        return Clock.now

    monkeypatch.setattr("payment.ledger.transfers.utcnow", utcnow)
    monkeypatch.setattr("payment.payments.utcnow", utcnow)
    return Clock


@pytest.fixture
def pay(session, issue, clock):
    def pay_(channel="wechat"):
        notice = issue()
        order = payments.start_payment(session, notice, channel, actor="payer")
        session.commit()
        payments.confirm_payment(session, order.id, channel=channel, channel_transaction_id=f"tx-{order.id}",
                                 amount=order.amount, paid_at=clock.now, actor="callback")
        session.commit()
        return notice

    return pay_


def _refund(session, notice, amount, key):
    refund, created = payments.refund(session, notice, amount, reason="退费", idempotency_key=key, actor="dept")
    session.commit()
    return refund, created


def _settle(session, day, today):
    results = settlement.settle_day(session, "wechat", day, today=today)
    session.commit()
    return [(r.transfer.amount, r.created) for r in results]


def _sums(session, account_id) -> tuple[int, int]:
    """(debits_posted, credits_posted) of an account."""
    session.expire_all()
    account = session.get(LedgerAccount, account_id)
    assert account.debits_pending == account.credits_pending == 0
    return account.debits_posted, account.credits_posted


@pytest.fixture
def accounts(department):
    code = department[0]
    return {"receivable": "channel_receivable:wechat", "treasury": f"treasury_settlement:{code}",
            "fee1": f"department_revenue:{code}:MKT-001", "fee3": f"department_revenue:{code}:MKT-003",
            "payable": "refunds_payable:wechat", "clearing": "payer_clearing"}


def _treasury_refunds(session) -> list[int]:
    return sorted(session.scalars(select(LedgerTransfer.amount).where(LedgerTransfer.code == "reversal")))


def test_a_partial_then_full_refund_of_a_settled_payment_comes_from_the_treasury(session, pay, clock, accounts):
    notice = pay()
    clock.now = _at(DAY2)
    assert _settle(session, DAY1, DAY2) == [(4550, True)]
    assert _sums(session, accounts["receivable"]) == (4550, 4550)

    _refund(session, notice, 2500, "r1")  # was refused with exceeds_debits before treasury refunds
    assert _treasury_refunds(session) == [2500]
    # in from the treasury, out to the payer:
    assert _sums(session, accounts["receivable"]) == (4550 + 2500, 4550 + 2500)
    assert _sums(session, accounts["treasury"]) == (4550, 2500)  # the treasury holds 2050 for the department
    assert _sums(session, accounts["fee1"]) == (2000, 2000)  # line 1 refunded whole first
    assert _sums(session, accounts["fee3"]) == (500, 2550)
    assert _sums(session, accounts["payable"]) == (2500, 2500)

    clock.now = _at(DAY3)
    _, created = _refund(session, notice, 2050, "r2")
    assert created and notice.status == "refunded"
    assert _treasury_refunds(session) == [2050, 2500]
    assert _sums(session, accounts["receivable"]) == (9100, 9100)
    assert _sums(session, accounts["treasury"]) == (4550, 4550)
    assert _sums(session, accounts["fee3"]) == (2550, 2550)
    assert _sums(session, accounts["payable"]) == (4550, 4550)
    assert _sums(session, accounts["clearing"]) == (4550, 4550)
    # Neither refund day owes the treasury anything, and settling them changes nothing.
    assert _settle(session, DAY2, DAY3) == []
    assert _settle(session, DAY3, date(2026, 12, 4)) == []
    assert check_ledger(session).ok


def test_a_refund_on_a_later_day_neither_blocks_nor_changes_the_earlier_settlement(session, pay, clock, accounts):
    notice = pay()
    clock.now = _at(DAY2)
    _refund(session, notice, 1000, "r1")  # day 1 closed but not settled yet
    # The treasury refunded ahead of the remittance in transit: in credit until day 1 settles.
    assert _sums(session, accounts["treasury"]) == (0, 1000)
    assert _sums(session, accounts["receivable"]) == (4550 + 1000, 1000)

    assert _settle(session, DAY1, DAY2) == [(4550, True)]  # was refused with exceeds_debits
    assert _sums(session, accounts["receivable"]) == (5550, 5550)
    assert _sums(session, accounts["treasury"]) == (4550, 1000)
    assert _settle(session, DAY1, DAY3) == [(4550, False)]  # a replay, the same amount
    assert _settle(session, DAY2, DAY3) == []
    assert check_ledger(session).ok


def test_a_same_day_refund_is_netted_in_that_days_settlement(session, pay, clock, accounts):
    notice = pay()
    clock.now = _at(DAY1, 10)  # 18:00 in Beijing, the same day
    _refund(session, notice, 1000, "r1")
    assert _treasury_refunds(session) == []
    assert _sums(session, accounts["receivable"]) == (4550, 1000)

    clock.now = _at(DAY2)
    assert _settle(session, DAY1, DAY2) == [(3550, True)]
    _refund(session, notice, 3550, "r2")  # the rest, the next day: from the treasury
    assert _treasury_refunds(session) == [3550]
    assert _settle(session, DAY1, DAY3) == [(3550, False)]
    assert _sums(session, accounts["receivable"]) == (4550 + 3550, 1000 + 3550 + 3550)
    assert _sums(session, accounts["treasury"]) == (3550, 3550)
    assert _sums(session, accounts["fee1"]) == (2000, 2000)
    assert _sums(session, accounts["fee3"]) == (2550, 2550)
    assert check_ledger(session).ok


def test_a_day_with_payments_and_refunds_of_earlier_days_settles_its_own_payments(session, pay, clock, accounts):
    first = pay()
    clock.now = _at(DAY2)
    second = pay()
    _refund(session, first, 4550, "r1")  # a day-1 payment refunded on day 2: not netted in day 2
    _refund(session, second, 550, "r1")  # a day-2 payment refunded on day 2: netted in day 2
    clock.now = _at(DAY3)
    assert _settle(session, DAY2, DAY3) == [(4000, True)]
    assert _settle(session, DAY1, DAY3) == [(4550, True)]
    assert _sums(session, accounts["receivable"]) == (4550 + 4550 + 4550, 4550 + 550 + 4000 + 4550)
    assert _sums(session, accounts["treasury"]) == (4000 + 4550, 4550)  # holds day 2's 4000
    assert check_ledger(session).ok


def test_a_replayed_refund_on_a_later_day_posts_nothing_again(session, pay, clock, accounts):
    notice = pay()
    clock.now = _at(DAY2)
    first, _ = _refund(session, notice, 1000, "r1")
    clock.now = _at(DAY3)
    again, created = _refund(session, notice, 1000, "r1")
    assert (again.id, created) == (first.id, False)
    assert _treasury_refunds(session) == [1000]
    assert _sums(session, accounts["treasury"]) == (0, 1000)
