"""Paying and refunding: confirmations post exactly once, refunds never exceed what was paid."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from common.db import get_db
from payment import payments, states
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.models import Notice, PaymentOrder
from tests.support.concurrency import in_threads, raised

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _transfers(session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerTransfer))


def _revenue(session, department, fee) -> int:
    session.expire_all()
    account = session.get(LedgerAccount, f"department_revenue:{department}:{fee}")
    return account.credits_posted - account.debits_posted


def _paid(session, issue, channel="wechat"):
    notice = issue()
    order = payments.start_payment(session, notice, channel, actor="payer")
    session.commit()
    payments.confirm_payment(session, order.id, channel=channel, channel_transaction_id="wx-1", amount=order.amount,
                             paid_at=NOW, actor="callback:wechat")
    session.commit()
    return notice, order


def test_a_confirmed_payment_posts_once_per_fee_and_marks_the_notice_paid(session, issue, department):
    notice, order = _paid(session, issue)
    assert notice.status == "paid" and notice.paid_amount == 4550
    assert _revenue(session, department[0], "MKT-001") == 2000
    assert _revenue(session, department[0], "MKT-003") == 2550
    assert _transfers(session) == 3
    assert check_ledger(session).ok


def test_duplicate_and_late_confirmations_change_nothing(session, issue):
    notice, order = _paid(session, issue)
    for _ in range(3):
        again = payments.confirm_payment(session, order.id, channel="wechat", channel_transaction_id="wx-1",
                                         amount=order.amount, paid_at=NOW, actor="callback:wechat")
        session.commit()
        assert not again.posted
    assert _transfers(session) == 3


@pytest.mark.parametrize(("change", "code"), [
    ({"amount": 4549}, "amount_mismatch"),
    ({"channel": "alipay"}, "channel_mismatch"),
])
def test_a_confirmation_that_does_not_match_the_order_posts_nothing(session, issue, change, code):
    notice = issue()
    order = payments.start_payment(session, notice, "wechat", actor="payer")
    session.commit()
    args = {"channel": "wechat", "channel_transaction_id": "wx-1", "amount": order.amount, **change}
    with pytest.raises(payments.PaymentRefused) as raised:
        payments.confirm_payment(session, order.id, paid_at=NOW, actor="callback", **args)
    assert raised.value.code == code
    session.rollback()
    assert _transfers(session) == 0 and session.get(Notice, notice.id).status == "paying"


def test_a_second_paid_order_for_a_paid_notice_lands_in_suspense(session, issue):
    notice = issue()
    first = payments.start_payment(session, notice, "wechat", actor="payer")
    second = payments.start_payment(session, notice, "alipay", actor="payer")
    session.commit()
    for order, txn in ((first, "wx-1"), (second, "ali-1")):
        payments.confirm_payment(session, order.id, channel=order.channel, channel_transaction_id=txn,
                                 amount=order.amount, paid_at=NOW, actor="callback")
        session.commit()
    assert session.get(LedgerAccount, "suspense").credits_posted == 4550
    assert notice.paid_amount == 4550
    assert check_ledger(session).ok


def test_paying_a_cancelled_notice_is_refused(session, issue):
    notice = issue()
    states.transition(session, notice, "cancelled", actor="dept", reason="test")
    session.commit()
    with pytest.raises(states.InvalidTransition):
        payments.start_payment(session, notice, "wechat", actor="payer")


def test_closing_the_only_order_makes_the_notice_payable_again(session, issue):
    notice = issue()
    order = payments.start_payment(session, notice, "bank", actor="payer")
    payments.close_order(session, order, actor="payer", reason="gave up")
    session.commit()
    assert notice.status == "created"


def test_partial_then_full_refund_and_never_more_than_paid(session, issue, department):
    notice, _order = _paid(session, issue)
    refund, created = payments.refund(session, notice, 2500, reason="部分退费", idempotency_key="r1", actor="dept")
    session.commit()
    assert created and notice.status == "partially_refunded"
    # line 1 (2000) is refunded whole first, then 500 of line 2
    assert [i.refunded_amount for i in notice.items] == [2000, 500]
    assert _revenue(session, department[0], "MKT-001") == 0
    again, created = payments.refund(session, notice, 2500, reason="部分退费", idempotency_key="r1", actor="dept")
    assert not created and again.id == refund.id
    with pytest.raises(payments.PaymentRefused) as raised:
        payments.refund(session, notice, 2051, reason="too much", idempotency_key="r2", actor="dept")
    assert raised.value.code == "refund_exceeds_paid"
    session.rollback()
    payments.refund(session, notice, 2050, reason="余额退费", idempotency_key="r3", actor="dept")
    session.commit()
    assert notice.status == "refunded" and notice.refunded_amount == 4550
    assert session.get(LedgerAccount, "channel_receivable:wechat").credits_posted == 4550
    assert check_ledger(session).ok


def test_a_refund_of_an_unpaid_notice_is_refused(session, issue):
    with pytest.raises(states.InvalidTransition):
        payments.refund(session, issue(), 100, reason="x", idempotency_key="r1", actor="dept")


@pytest.mark.services
def test_concurrent_duplicate_confirmations_post_once(app, issue, session, postgres_url):
    """Eight threads confirm the same order at once on PostgreSQL: one posts, the rest replay."""
    notice = issue()
    order = payments.start_payment(session, notice, "wechat", actor="payer")
    session.commit()
    barrier = threading.Barrier(8)

    def confirm(_index: int) -> bool:
        with app.app_context(), get_db(app).session() as own:
            barrier.wait()
            posted = payments.confirm_payment(own, order.id, channel="wechat", channel_transaction_id="wx-1",
                                              amount=order.amount, paid_at=NOW, actor="callback").posted
            own.commit()
            return posted

    results = in_threads(confirm, 8, timeout=30)
    assert raised(results) == [] and sorted(results) == [False] * 7 + [True]
    session.expire_all()
    assert _transfers(session) == 3
    assert session.get(PaymentOrder, order.id).status == "paid"
    assert check_ledger(session).ok


def test_a_refund_goes_back_through_the_order_that_paid_not_the_one_in_suspense(session, issue):
    notice = issue()
    wechat = payments.start_payment(session, notice, "wechat", actor="payer")
    alipay = payments.start_payment(session, notice, "alipay", actor="payer")
    session.commit()
    # Alipay's payment happened first at the channel, but WeChat's notification arrived first.
    payments.confirm_payment(session, wechat.id, channel="wechat", channel_transaction_id="wx-1",
                             amount=wechat.amount, paid_at=NOW, actor="callback")
    payments.confirm_payment(session, alipay.id, channel="alipay", channel_transaction_id="ali-1",
                             amount=alipay.amount, paid_at=NOW.replace(hour=7), actor="callback")
    session.commit()
    payments.refund(session, notice, 1000, reason="部分退费", idempotency_key="r1", actor="dept")
    session.commit()
    assert session.get(LedgerAccount, "refunds_payable:wechat").credits_posted == 1000
    assert session.get(LedgerAccount, "refunds_payable:alipay").credits_posted == 0
    assert session.get(LedgerAccount, "suspense").credits_posted == alipay.amount
    assert check_ledger(session).ok
