"""Digests: low-priority messages with one ``digest_key`` to one person go out as one.

A low-priority message with a digest key is held for ``MESSAGING_DIGEST_WINDOW`` seconds.
When the first of a group comes due, its attempt takes every other held delivery of the same
app, key, channel and recipient address with one conditional UPDATE (``status = 'queued'``),
so two workers can never both take a delivery (the duplicate digests Novu's users report) and
none is sent twice. SMS is never combined: carrier templates fix its text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from messaging.models import Delivery, Message, Recipient

COMBINED_CHANNELS = ("inapp", "email")
MAX_DIGEST = 50


def take_group(session: Session, delivery: Delivery, message: Message, recipient: Recipient) -> list[Delivery]:
    """The other held deliveries of ``delivery``'s digest group, now claimed by this attempt."""
    if not message.digest_key or delivery.channel not in COMBINED_CHANNELS:
        return []
    address = {"subject": Recipient.subject == recipient.subject} if recipient.subject else \
        {"email": Recipient.email == recipient.email}
    condition = next(iter(address.values()))
    candidates = session.scalars(
        select(Delivery.id).join(Recipient, Recipient.id == Delivery.recipient_id)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.status == "queued", Delivery.channel == delivery.channel, Delivery.id != delivery.id,
               Message.app == message.app, Message.digest_key == message.digest_key, condition)
        .order_by(Delivery.id).limit(MAX_DIGEST)).all()
    if not candidates:
        return []
    # Only the rows this UPDATE changed (RETURNING) are ours: a concurrent relay may claim others.
    # They are claimed as ``delivery`` is (``sending``, at its claim's time), not merely
    # dispatched: no task names their attempt, and a worker lost mid-send must leave them for
    # the sweeper, which goes by that time.
    taken = session.scalars(update(Delivery).where(Delivery.id.in_(candidates), Delivery.status == "queued")
                            .values(status="sending", attempt=Delivery.attempt + 1,
                                    dispatched_at=delivery.dispatched_at)
                            .returning(Delivery.id)).all()
    rows = [session.get(Delivery, i) for i in taken]
    for row in rows:
        session.refresh(row)
    return rows


def combine(channel: str, contents: list[dict[str, Any]]) -> dict[str, Any]:
    """One content out of several of one channel, newest last."""
    if len(contents) == 1:
        return contents[0]
    if channel == "inapp":
        return {"title": f"{len(contents)} 条通知：{contents[-1]['title']}",
                "body": "\n\n".join(f"{c['title']}\n{c['body']}" for c in contents)}
    html_parts = [c.get("html") or "" for c in contents]
    return {"subject": f"{len(contents)} 条通知：{contents[-1]['subject']}",
            "text": "\n\n".join(f"{c['subject']}\n{c['text']}" for c in contents),
            "html": "<hr>".join(html_parts) if all(html_parts) else None}
