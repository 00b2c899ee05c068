"""Telling holders: the notification outbox and the message hub behind a :class:`Notifier`.

A change that should reach the holder writes a :class:`~licenses.models.Notification` row in
the same transaction as the change (:func:`enqueue`); :func:`deliver_pending` sends pending
rows through the notifier, after the request that wrote them and again from the periodic
sweeper (``licenses/tasks.py``), so a hub that is down delays a message but never loses it.
The hub deduplicates on the ``Idempotency-Key`` (the row id), so a row sent twice after a
crash between sending and marking is delivered once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from common.peers import outbox
from common.peers.notifier import Notifier

from .models import Notification


def enqueue(session: Session, template: str, variables: dict[str, Any], recipients: list[dict[str, str]]) -> None:
    """Add a message to the holders' outbox (the caller commits it with the change it reports)."""
    outbox.enqueue(session, Notification, template, variables, recipients)


def deliver_pending(session: Session, notifier: Notifier, *, limit: int = 100) -> int:
    """Send pending messages; the number sent. Commits after each."""
    return outbox.deliver_pending(session, Notification, notifier, limit=limit)
