"""Channel notifications (支付结果通知): verify, post once, acknowledge, and keep a record of each.

Nothing is posted before the adapter has verified the signature, the timestamp window and the
decryption, and :func:`payment.payments.confirm_payment` has matched channel and amount to the
order. A refused notification is recorded in its own transaction, after the refused work has
been rolled back, so the record survives and the ledger stays exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Problem
from payment import payments
from payment.channels.base import Ack, CallbackRejected, ChannelAdapter
from payment.models import ChannelCallback


@dataclass(frozen=True)
class CallbackOutcome:
    ack: Ack
    outcome: str  # posted | duplicate | rejected
    reason: str | None = None


def _check_fields(paid) -> None:
    """What every channel's notification must satisfy beyond its signature: ids that fit the
    columns, a time with its zone. :raise CallbackRejected:"""
    ids = (paid.order_id, paid.channel_transaction_id, paid.notification_id)
    if any(not value or len(value) > 64 for value in ids):
        raise CallbackRejected("an id is empty or longer than 64 characters", code="callback_malformed")
    if paid.paid_at.tzinfo is None:
        raise CallbackRejected("the payment time has no time zone", code="callback_malformed")


def _record(session: Session, channel: str, outcome: str, *, reason: str | None = None,
            notification_id: str | None = None, order_id: str | None = None, source: str | None = None) -> None:
    session.add(ChannelCallback(channel=channel, received_at=utcnow(), notification_id=notification_id,
                                order_id=order_id, outcome=outcome, reason=reason, source=source))


def handle_callback(session: Session, adapter: ChannelAdapter, headers: dict[str, str], body: bytes, *, now: float,
                    source: str | None = None) -> CallbackOutcome:
    """Process one notification and commit; the answer is what the institution expects.

    A refused notification gets the channel's failure answer, so the institution retries: a
    genuine one that raced its order (not yet committed here) succeeds on a later try, a forged
    or wrong one never does, and each try is recorded.
    """
    try:
        paid = adapter.parse_callback(headers, body, now)
        _check_fields(paid)
    except CallbackRejected as rejected:
        session.rollback()
        _record(session, adapter.name, "rejected", reason=rejected.code, source=source)
        session.commit()
        return CallbackOutcome(adapter.nack(rejected.code), "rejected", rejected.code)
    try:
        confirmation = payments.confirm_payment(session, paid.order_id, channel=adapter.name,
                                                channel_transaction_id=paid.channel_transaction_id,
                                                amount=paid.amount, paid_at=paid.paid_at,
                                                actor=f"callback:{adapter.name}")
    except Problem as refused:
        session.rollback()
        _record(session, adapter.name, "rejected", reason=refused.code, notification_id=paid.notification_id,
                order_id=paid.order_id, source=source)
        session.commit()
        return CallbackOutcome(adapter.nack(refused.code), "rejected", refused.code)
    outcome = "posted" if confirmation.posted else "duplicate"
    _record(session, adapter.name, outcome, notification_id=paid.notification_id, order_id=paid.order_id,
            source=source)
    session.commit()
    return CallbackOutcome(adapter.ack(), outcome)


def resolve_by_query(session: Session, adapter: ChannelAdapter, institution, order_id: str, *,
                     now: float) -> CallbackOutcome | None:
    """The query-order fallback: ask the institution about an order whose notification never came.

    The answer is the institution's signed notification, so it goes through the very same
    verification and posting as a callback. None while the institution says it is unpaid.
    """
    answer = institution.query(adapter.name, order_id)
    if answer is None:
        return None
    headers, body = answer
    return handle_callback(session, adapter, headers, body, now=now, source="query")
