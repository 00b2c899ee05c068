"""Paying and refunding a notice: orders, confirmations (posted exactly once), refunds.

:func:`confirm_payment` is what a verified channel callback, a query-order fallback and a
reconciliation decision all call. It locks the order row first, so duplicated, late and
concurrent confirmations of one order serialise and only the first posts; the ledger's
transfer ids (``pay:<order>``) would refuse a second posting anyway. Every use case here that
decides on what it reads begins with :func:`common.db.begin_write`: on SQLite ``FOR UPDATE``
is dropped and reads run outside the transaction, so without it a notification and the query
fallback both read the order open and both recorded a payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from common.errors import Conflict, NotFound, Problem
from common.values.times import CHINA
from payment import notify, postings, receipts, states
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.models import Notice, PaymentOrder, Refund

CHANNELS = ("wechat", "alipay", "bank")


class PaymentRefused(Problem):
    status, code, title = 422, "payment_refused", "The payment was refused"


@dataclass(frozen=True)
class Confirmation:
    order: PaymentOrder
    posted: bool  # False: this order had been confirmed before (a duplicate or late callback)


def start_payment(session: Session, notice: Notice, channel: str, *, actor: str) -> PaymentOrder:
    """Open an order to pay the whole notice through ``channel``.

    :raise PaymentRefused: unknown channel.
    :raise InvalidTransition: the notice is paid, cancelled, expired or refunded.
    """
    if channel not in CHANNELS:
        raise PaymentRefused(f"unknown channel {channel!r}", code="unknown_channel")
    begin_write(session)
    notice = session.get(Notice, notice.id, with_for_update=True, populate_existing=True)
    if notice.status not in states.PAYABLE:
        raise states.InvalidTransition(f"a {notice.status} notice cannot be paid", status_now=notice.status)
    if notice.status == "created":
        states.transition(session, notice, "paying", actor=actor, reason=f"order through {channel}")
    order = PaymentOrder(notice_id=notice.id, channel=channel, amount=notice.total_amount, status="open",
                         created_at=utcnow())
    session.add(order)
    session.flush()
    return order


def confirm_payment(session: Session, order_id: str, *, channel: str, channel_transaction_id: str, amount: int,
                    paid_at: datetime, actor: str) -> Confirmation:
    """The channel says ``order_id`` was paid: post it once and mark the notice paid.

    A confirmation for a notice that can no longer take it (already paid through another order,
    cancelled, expired) still books the money, into suspense, so nothing received is lost; when
    the order was one we had closed as stale, the money is returned to the payer at once
    (order ``returned``).

    :raise NotFound: no such order (the callback is recorded as rejected by the caller).
    :raise PaymentRefused: channel or amount does not match the order (nothing is posted).
    """
    begin_write(session)  # the order's status decides, and on SQLite FOR UPDATE alone locks nothing
    order = session.get(PaymentOrder, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    if order.channel != channel:
        raise PaymentRefused("the order was opened for another channel", code="channel_mismatch")
    if amount != order.amount:
        raise PaymentRefused(f"paid {amount} fen for an order of {order.amount}", code="amount_mismatch")
    if order.status == "paid":
        if order.channel_transaction_id != channel_transaction_id:
            raise PaymentRefused("the order was paid by another transaction", code="transaction_mismatch")
        return Confirmation(order, posted=False)
    if order.status == "returned":  # a late payment of a closed order, already sent back
        if order.channel_transaction_id != channel_transaction_id:
            raise PaymentRefused("the order was paid by another transaction", code="transaction_mismatch")
        return Confirmation(order, posted=False)
    notice = session.get(Notice, order.notice_id, with_for_update=True, populate_existing=True)
    was_closed = order.status == "closed"
    order.status, order.channel_transaction_id, order.paid_at = "paid", channel_transaction_id, paid_at
    if notice.status in states.PAYABLE:
        # Also for an order we had closed (stale_orders.py): the payer meant this notice and it
        # still takes payment, so the late money pays it.
        postings.post_payment(session, notice, order)
        notice.paid_amount, notice.paid_at, notice.paid_order_id = order.amount, paid_at, order.id
        states.transition(session, notice, "paid", actor=actor, reason=f"{channel} {channel_transaction_id}")
        receipt = receipts.issue_receipt(session, notice)  # sealed later by a task: payment never waits on it
        notify.notice_paid(session, notice, receipt)
    elif was_closed:
        # We closed the order and the notice has moved on (expired, cancelled, paid another
        # way): nobody decides to keep this money, so it goes straight back to the payer. Two
        # batches in one transaction: all three accounts are locked in the one order before the
        # first, or the second would take refunds_payable:<channel> while holding suspense, which
        # sorts after it (a cycle with any writer taking both in order).
        postings.hold_returned_payment_accounts(session, order)
        postings.post_unclaimed_payment(session, notice, order)
        postings.post_returned_payment(session, notice, order)
        order.status = "returned"
    else:
        postings.post_unclaimed_payment(session, notice, order)
    session.flush()
    return Confirmation(order, posted=True)


def close_order(session: Session, order: PaymentOrder, *, actor: str, reason: str) -> None:
    """The payer gave up (or the channel closed the order): the notice is payable again.

    ``order`` was read after :func:`~common.db.begin_write`, under its row lock, in this
    transaction (:func:`payment.stale_orders.close_stale_order`): its status decides here.

    :raise Conflict: the order is not open.
    """
    if order.status != "open":
        raise Conflict(f"the order is {order.status}", code="order_not_open")
    order.status = "closed"
    notice = session.get(Notice, order.notice_id, with_for_update=True, populate_existing=True)
    still_open = session.scalar(select(PaymentOrder.id).where(PaymentOrder.notice_id == notice.id,
                                                             PaymentOrder.status == "open",
                                                             PaymentOrder.id != order.id))
    if notice.status == "paying" and still_open is None:
        states.transition(session, notice, "created", actor=actor, reason=reason)


def _allocate(notice: Notice, amount: int) -> dict[int, int]:
    """Spread a refund over the items, in line order, each up to what is left of it."""
    allocation, left = {}, amount
    for item in notice.items:
        take = min(left, item.amount - item.refunded_amount)
        if take > 0:
            allocation[item.line] = take
            left -= take
    return allocation


def _funded_by_treasury(session: Session, order: PaymentOrder) -> bool:
    """Whether a refund of ``order`` posted now is a refund from the treasury (a later day than the
    payment, Beijing time) rather than out of the channel's collections of the day (postings.py).

    The channel's receivable is locked first, and the clock read after: settlement locks it too
    before it reads a day's refunds, so a same-day refund committing just after midnight is
    either seen by that day's settlement or, waiting behind it, is decided on the new day.
    """
    session.get(LedgerAccount, postings.channel_receivable(order.channel), with_for_update=True)
    paid = session.get(LedgerTransfer, f"pay:{order.id}")
    return paid.created_at.astimezone(CHINA).date() < utcnow().astimezone(CHINA).date()


def refund(session: Session, notice: Notice, amount: int, *, reason: str, idempotency_key: str,
           actor: str) -> tuple[Refund, bool]:
    """Refund part or all of a paid notice, never more than was paid.

    :return: ``(refund, created)``; the same key again returns the first refund.
    :raise PaymentRefused: the amount is not a positive integer or exceeds what is left.
    :raise InvalidTransition: the notice is not paid.
    """
    begin_write(session)  # what is left to refund decides, and two refunds must not both see it
    notice = session.get(Notice, notice.id, with_for_update=True, populate_existing=True)
    earlier = session.scalar(select(Refund).where(Refund.notice_id == notice.id,
                                                  Refund.idempotency_key == idempotency_key))
    if earlier is not None:
        if (earlier.amount, earlier.reason) != (amount, reason):
            raise PaymentRefused("this Idempotency-Key was used for another refund", code="idempotency_key_reused")
        return earlier, False
    if type(amount) is not int or amount <= 0:
        raise PaymentRefused("the amount is a positive integer of fen", code="invalid_amount")
    if notice.status not in ("paid", "partially_refunded"):
        raise states.InvalidTransition(f"a {notice.status} notice cannot be refunded", status_now=notice.status)
    left = notice.paid_amount - notice.refunded_amount
    if amount > left:
        raise PaymentRefused(f"only {left} fen can still be refunded", code="refund_exceeds_paid")
    order = session.get(PaymentOrder, notice.paid_order_id)  # the order that paid it, not one in suspense
    from_treasury = _funded_by_treasury(session, order)
    row = Refund(notice_id=notice.id, amount=amount, reason=reason, idempotency_key=idempotency_key,
                 created_by=actor, created_at=utcnow())
    session.add(row)
    session.flush()
    allocation = _allocate(notice, amount)
    postings.post_refund(session, notice, row, order.channel, allocation, from_treasury=from_treasury)
    items = {item.line: item for item in notice.items}
    for line, part in allocation.items():
        items[line].refunded_amount += part
    notice.refunded_amount += amount
    to_status = "refunded" if notice.refunded_amount == notice.paid_amount else "partially_refunded"
    states.transition(session, notice, to_status, actor=actor, reason=reason)
    session.flush()
    return row, True
