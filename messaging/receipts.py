"""A channel's delivery receipts (the SMS carrier's reports): the attempt they name finishes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from messaging.claims import IN_FLIGHT
from messaging.delivery import fail_delivery, finish_recipient, settle
from messaging.models import Delivery, Message, Recipient


def apply_receipt(session: Session, provider_id: str, success: bool, error: str | None, *,
                  now: datetime | None = None) -> str:
    """A channel's delivery receipt (e.g. an SMS report) for the attempt it names (commit).

    Returns ``applied``, ``duplicate`` (the delivery is past ``sent``: receipts repeat) or
    ``unknown``: no delivery has that id yet, which happens when the receipt overtakes the
    worker's commit of the send; the caller asks the carrier to push it again later.
    """
    now = now or utcnow()
    # The delivery's status decides, so it is read under the lock: carriers repeat receipts, and
    # two copies at once both read it "sent" and both finished the recipient.
    begin_write(session)
    delivery = session.scalars(select(Delivery).where(Delivery.provider_id == provider_id).with_for_update()
                               .execution_options(populate_existing=True)).first()
    if delivery is None or delivery.status not in ("sent", *IN_FLIGHT):
        # Nothing to write: the lock taken above is let go now, not at the request's end (the
        # caller goes on with other receipts and kicks the relay, which writes in its own session).
        session.rollback()
        return "unknown" if delivery is None else "duplicate"
    recipient = session.get(Recipient, delivery.recipient_id)
    message = session.get(Message, delivery.message_id)
    delivery.updated_at = recipient.updated_at = now
    if success:
        delivery.status = "delivered"
        finish_recipient(session, message, recipient, "delivered", None, now)
    else:
        fail_delivery(session, delivery, recipient, message, error or "receipt_failed", now)
    settle(session, now)
    session.commit()
    return "applied"
