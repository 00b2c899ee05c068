"""What identity tells people, through the message hub: password-reset links, as critical
security SMS to the mobile the person gave (a raw number; the hub allows ``xsn-identity`` those).

A reset writes a :class:`~identity.models.Notification` row in the transaction that creates the
token (:func:`enqueue_reset_link`, ``common.peers.outbox``); the row reaches the hub from the
Celery worker (``identity.tasks``: a task the request asks for, and a sweeper on beat), never from
identity's own request: the hub checks the caller's token against identity and identity answers
with few workers (one in ``xsn run``), so a request waiting on the hub could wait on itself.

The row holds the link and the number only until it is sent: :func:`deliver_pending` clears them
afterwards (identity keeps only token hashes and encrypted numbers at rest).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.http import ServiceClient
from common.peers import outbox
from common.peers.credentials import ClientCredentials, client_secret_source
from common.peers.notifier import HubNotifier, MemoryNotifier, Notifier, NotifyFailed
from identity.models import Notification

RESET_TEMPLATE = "password_reset"  # the hub's template of app xsn-identity (messaging.seed)


def enqueue_reset_link(session: Session, mobile: str, link: str, minutes: int) -> None:
    """Add the reset SMS to the outbox (the caller commits it with the token)."""
    outbox.enqueue(session, Notification, RESET_TEMPLATE, {"link": link, "minutes": str(minutes)},
                   [{"phone": mobile}])


def deliver_pending(session: Session, notifier: Notifier, *, limit: int = 100) -> int:
    """Send pending messages through ``notifier``; the number sent (commits). Rows no longer
    pending (sent, or failed for good) keep no link and no number."""
    due = list(session.scalars(select(Notification.id).where(Notification.status == "pending")
                               .order_by(Notification.created_at).limit(limit)))
    sent = outbox.deliver_pending(session, Notification, notifier, limit=limit)
    if due:
        session.execute(update(Notification).where(Notification.id.in_(due), Notification.status != "pending")
                        .values(variables={}, recipients=[]))
        session.commit()
    return sent


def make_notifier(config: dict[str, Any]) -> Notifier:
    """``IDENTITY_NOTIFIER``: ``hub`` (the message hub, as ``IDENTITY_CLIENT_ID``) or ``memory``."""
    if config["IDENTITY_NOTIFIER"] == "memory":
        return MemoryNotifier()
    urls, timeout = config["SERVICE_URLS"], float(config.get("HTTP_TIMEOUT", 5.0))
    client_id = config["IDENTITY_CLIENT_ID"]
    credentials = ClientCredentials(f"{urls['identity']}/oauth/token", client_id,
                                    client_secret_source(config, client_id, "IDENTITY_CLIENT_SECRET"),
                                    timeout=timeout)
    return HubNotifier(ServiceClient(urls["messaging"], timeout=timeout, token_provider=credentials.provider(
        "xsn:messaging", "messaging:send", unavailable=NotifyFailed)),
        category="security", priority="critical", channels=("sms",))
