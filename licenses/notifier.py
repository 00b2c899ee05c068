"""Telling holders: the notification outbox and the message hub behind a :class:`Notifier`.

A change that should reach the holder writes a :class:`~licenses.models.Notification` row in
the same transaction as the change (:func:`enqueue`); :func:`deliver_pending` sends pending
rows through the notifier, after the request that wrote them and again from the periodic
sweeper (``licenses/tasks.py``), so a hub that is down delays a message but never loses it.
The hub deduplicates on the ``Idempotency-Key`` (the row id), so a row sent twice after a
crash between sending and marking is delivered once.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.http import ServiceClient

from .models import Notification

log = structlog.get_logger("xsn.licenses.notifier")
MAX_ATTEMPTS = 20


class NotifyFailed(Exception):
    """The hub did not accept the message (transport error or refusal)."""


class Notifier(Protocol):
    def send(self, template: str, variables: dict[str, Any], recipients: list[dict[str, str]], *,
             idempotency_key: str) -> str:
        """Queue a message; its id. :raise NotifyFailed:"""


class MemoryNotifier:
    """Keeps what it was asked to send (tests, a node run without the hub)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = False

    def send(self, template, variables, recipients, *, idempotency_key):
        if self.fail:
            raise NotifyFailed("simulated hub outage")
        for earlier in self.sent:
            if earlier["idempotency_key"] == idempotency_key:
                return earlier["message_id"]
        message_id = f"mem-{len(self.sent) + 1}"
        self.sent.append({"template": template, "variables": variables, "recipients": recipients,
                          "idempotency_key": idempotency_key, "message_id": message_id})
        return message_id


class HubNotifier:
    """``POST /messages`` on the message hub (client-credentials token with ``messaging:send``)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def send(self, template, variables, recipients, *, idempotency_key):
        body = {"template": template, "variables": variables, "recipients": recipients, "category": "notice",
                "priority": "normal", "channels": ["inapp", "sms"]}
        try:
            response = self.client.post("/messages", json=body, headers={"Idempotency-Key": idempotency_key})
        except NotifyFailed:
            raise  # no token for the hub
        except requests.RequestException as exc:
            raise NotifyFailed(f"the message hub did not answer: {type(exc).__name__}") from None
        if response.status_code not in (200, 201, 202):
            raise NotifyFailed(f"the message hub answered {response.status_code}")
        return str(response.json().get("message_id", ""))


def enqueue(session: Session, template: str, variables: dict[str, Any], recipients: list[dict[str, str]]) -> None:
    """Add a message to the outbox (the caller commits it with the change it reports)."""
    if recipients:
        session.add(Notification(template=template, variables=variables, recipients=recipients))


def deliver_pending(session: Session, notifier: Notifier, *, limit: int = 100) -> int:
    """Send pending messages; the number sent. Commits after each."""
    rows = session.scalars(select(Notification).where(Notification.status == "pending")
                           .order_by(Notification.created_at).limit(limit)).all()
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
            log.warning("notification_not_sent", notification=row.id, attempts=row.attempts, error=row.last_error)
            continue
        row.status, row.sent_at = "sent", utcnow()
        session.commit()
        sent += 1
    return sent
