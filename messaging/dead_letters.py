"""Dead letters: deliveries that ran out of retries and channels, listed per app and replayed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Conflict, NotFound
from messaging.models import Delivery, Message, Recipient


class NotDeadLetter(Conflict):
    code, title = "not_dead_letter", "The delivery is not on the dead-letter list"


def for_app(session: Session, app: str, *, offset: int = 0, limit: int = 100) -> list[Delivery]:
    return list(session.scalars(select(Delivery).join(Message, Message.id == Delivery.message_id)
                                .where(Delivery.dead.is_(True), Message.app == app)
                                .order_by(Delivery.id.desc()).offset(offset).limit(limit)))


def replay(session: Session, app: str, delivery_id: int, *, now: datetime | None = None) -> Delivery:
    """Queue a dead delivery once more, with the next attempt number (commit).

    :raise NotFound: not this app's delivery. :raise NotDeadLetter:
    """
    now = now or utcnow()
    delivery = session.get(Delivery, delivery_id)
    message = session.get(Message, delivery.message_id) if delivery else None
    if delivery is None or message.app != app:
        raise NotFound("no such delivery", code="delivery_not_found")
    if not delivery.dead:
        raise NotDeadLetter()
    recipient = session.get(Recipient, delivery.recipient_id)
    delivery.dead, delivery.status, delivery.next_attempt_at, delivery.updated_at = False, "queued", now, now
    recipient.status, recipient.reason, recipient.updated_at = "queued", None, now
    session.execute(update(Message).where(Message.id == message.id)
                    .values(pending_count=Message.pending_count + 1, status="queued", completed_at=None))
    session.commit()
    return delivery
