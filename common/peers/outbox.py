"""The notification outbox every node that tells people things uses.

A change that should reach a person writes a row (a table of the node's own, declared with
:class:`NotificationOutboxMixin`) in the same transaction as the change; :func:`deliver_pending`
sends pending rows through a :class:`~common.peers.notifier.Notifier` after the request and
again from a periodic sweeper, so a hub that is down delays a message but never loses it. The
row id is the ``Idempotency-Key``: a row sent twice after a crash between sending and marking
is delivered once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from common.db import utcnow
from common.peers.notifier import Notifier, NotifyFailed

log = structlog.get_logger("xsn.peers.outbox")
MAX_ATTEMPTS = 20


def _new_id() -> str:
    return uuid.uuid4().hex


class NotificationOutboxMixin:
    """Columns of an outbox table: ``class Notification(NotificationOutboxMixin, Base)``."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    template: Mapped[str] = mapped_column(String(64))
    variables: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipients: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


def enqueue(session: Session, model: type, template: str, variables: dict[str, Any],
            recipients: list[dict[str, str]]) -> None:
    """Add a message to the outbox (the caller commits it with the change it reports)."""
    if recipients:
        session.add(model(template=template, variables=variables, recipients=recipients))


def deliver_pending(session: Session, model: type, notifier: Notifier, *, limit: int = 100) -> int:
    """Send pending messages; the number sent. Commits after each."""
    rows = session.scalars(select(model).where(model.status == "pending").order_by(model.created_at)
                           .limit(limit)).all()
    sent = 0
    for row in rows:
        row.attempts += 1
        try:
            row.message_id = notifier.send(row.template, row.variables, row.recipients, idempotency_key=row.id)
        except NotifyFailed as exc:
            row.last_error = str(exc)[:255]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            session.commit()
            log.warning("notification_not_sent", notification=row.id, attempts=row.attempts,
                        error_type=type(exc).__name__)
            continue
        row.status, row.sent_at = "sent", utcnow()
        session.commit()
        sent += 1
    return sent
