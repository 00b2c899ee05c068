"""The in-app inbox: one item per delivery (the unique delivery id makes a repeat harmless)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound
from messaging.channels import Outcome, Outgoing
from messaging.models import Delivery, InboxItem, Recipient


class InboxItemNotFound(NotFound):
    code, title = "inbox_item_not_found", "No such message in your inbox"


class InboxChannel:
    commit_each = False
    name = "inapp"

    def send(self, session: Session, item: Outgoing) -> Outcome:
        if item.subject is None:
            return Outcome("failed", error="no_subject")
        exists = session.scalar(select(InboxItem.id).where(InboxItem.delivery_id == item.delivery_id))
        if exists is None:
            session.add(InboxItem(delivery_id=item.delivery_id, subject=item.subject, title=item.content["title"],
                                  body=item.content["body"], category=item.category))
            session.flush()
        return Outcome("delivered", provider_id=str(exists or ""))

    def close(self) -> None:
        pass


def list_items(session: Session, subject: str, *, unread_only: bool = False, offset: int = 0,
               limit: int = 50) -> list[InboxItem]:
    query = select(InboxItem).where(InboxItem.subject == subject, InboxItem.deleted.is_(False))
    if unread_only:
        query = query.where(InboxItem.read_at.is_(None))
    return list(session.scalars(query.order_by(InboxItem.id.desc()).offset(offset).limit(limit)))


def unread_count(session: Session, subject: str) -> int:
    return session.scalar(select(func.count()).select_from(InboxItem).where(
        InboxItem.subject == subject, InboxItem.deleted.is_(False), InboxItem.read_at.is_(None))) or 0


def _own(session: Session, subject: str, item_id: int) -> InboxItem:
    item = session.get(InboxItem, item_id)
    if item is None or item.subject != subject or item.deleted:
        raise InboxItemNotFound()
    return item


def get_item(session: Session, subject: str, item_id: int) -> InboxItem:
    """:raise InboxItemNotFound: absent, deleted or someone else's."""
    return _own(session, subject, item_id)


def mark_read(session: Session, subject: str, item_id: int) -> InboxItem:
    """Mark read; the delivery and its recipient become ``read`` too (commit). :raise InboxItemNotFound:"""
    item = _own(session, subject, item_id)
    if item.read_at is None:
        now = utcnow()
        item.read_at = now
        delivery = session.get(Delivery, item.delivery_id)
        delivery.status, delivery.updated_at = "read", now
        session.execute(update(Recipient).where(Recipient.id == delivery.recipient_id)
                        .values(status="read", updated_at=now))
    session.commit()
    return item


def mark_all_read(session: Session, subject: str) -> int:
    """(commit) Returns how many were unread."""
    items = list_items(session, subject, unread_only=True, limit=10_000)
    for item in items:
        mark_read(session, subject, item.id)
    return len(items)


def delete_item(session: Session, subject: str, item_id: int) -> None:
    """(commit) :raise InboxItemNotFound:"""
    _own(session, subject, item_id).deleted = True
    session.commit()
