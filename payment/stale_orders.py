"""Closing orders the payer walked away from (超时关单).

A notice stays ``paying`` while one of its orders is open, and nothing but the channel knows
whether the payer paid. An order open past ``PAYMENT_ORDER_TIMEOUT`` is resolved by the beat
task ``payment.close_stale_orders``, one order at a time, without holding a lock across a call
to the institution:

1. ask the institution (the query fallback): a paid order is posted through the very same
   verification as a callback, and that is the end of it;
2. otherwise close it at the institution, which then takes no payment for it; if the payer paid
   in between, the institution says so and the query of step 1 posts it;
3. close it here under the order's row lock, unless a callback got there first; the notice
   becomes payable again (``created``), or ``expired`` when past its due date.

A notification that still arrives for an order closed here is real money (a payment the
institution took before it closed the order): it pays the notice if the notice still takes
payment, and is otherwise booked to suspense and returned to the payer at once
(:func:`payment.payments.confirm_payment`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import begin_write
from common.errors import ServiceUnavailable
from common.values.times import CHINA
from payment import callbacks, payments, states
from payment.channels.base import ChannelAdapter
from payment.models import Notice, PaymentOrder

ACTOR = "system:stale-orders"
log = structlog.get_logger("xsn.payment.stale_orders")


def stale_orders(session: Session, *, now: datetime, timeout: timedelta, limit: int = 100) -> list[PaymentOrder]:
    """Open orders created before ``now - timeout``, oldest first."""
    return list(session.scalars(select(PaymentOrder).where(PaymentOrder.status == "open",
                                                           PaymentOrder.created_at < now - timeout)
                                .order_by(PaymentOrder.created_at).limit(limit)))


def close_stale_order(session: Session, adapter: ChannelAdapter, institution, order_id: str, *,
                      now: datetime) -> str:
    """Resolve one stale order and commit. Returns what became of it: ``paid`` (the institution
    says it was paid, and it is posted), ``closed`` (the notice takes payment again), ``expired``
    (closed, and the notice is past its due date), ``unresolved`` (the institution's account of a
    payment was refused and recorded; the order stays open for a person to look at), or ``gone``
    (a callback resolved it meanwhile).

    :raise ServiceUnavailable: the institution did not answer (nothing changed here).
    """
    outcome = callbacks.resolve_by_query(session, adapter, institution, order_id, now=now.timestamp())
    if outcome is None and institution.close_order(adapter.name, order_id) == "paid":
        # Paid between the query and the close: its signed account is there now.
        outcome = callbacks.resolve_by_query(session, adapter, institution, order_id, now=now.timestamp())
        if outcome is None:
            return "unresolved"
    if outcome is not None:
        return "unresolved" if outcome.outcome == "rejected" else "paid"
    begin_write(session)  # a callback's confirmation either committed before this read or waits for it
    order = session.get(PaymentOrder, order_id, with_for_update=True, populate_existing=True)
    if order.status != "open":  # a callback posted it after our query: it stands
        session.rollback()
        return "gone"
    payments.close_order(session, order, actor=ACTOR, reason="no payment within the order's time limit")
    notice = session.get(Notice, order.notice_id)  # locked by close_order
    result = "closed"
    if notice.status == "created" and notice.due_date < now.astimezone(CHINA).date():
        states.transition(session, notice, "expired", actor=ACTOR, reason=f"unpaid after {notice.due_date}")
        result = "expired"
    session.commit()
    return result


def close_stale_orders(session: Session, adapters: dict[str, ChannelAdapter], institution, *, now: datetime,
                       timeout: timedelta, limit: int = 100) -> Counter:
    """Resolve every order open past ``timeout``; one unreachable institution does not stop the rest."""
    counts: Counter = Counter()
    for order_id, channel in [(o.id, o.channel) for o in stale_orders(session, now=now, timeout=timeout,
                                                                          limit=limit)]:
        session.rollback()  # each order in its own transaction
        try:
            counts[close_stale_order(session, adapters[channel], institution, order_id, now=now)] += 1
        except ServiceUnavailable as exc:
            session.rollback()
            log.warning("stale_order_unresolved", order=order_id, channel=channel, reason=exc.code)
            counts["unreachable"] += 1
    return counts
