"""Events to the sending app's webhooks: written with the state change, delivered by the relay.

Each event row is one event for one endpoint; its id is the ``webhook-id``, constant across
retries, so a receiver deduplicates by it. Retries follow the Standard Webhooks (Svix)
schedule with jitter; a 410 disables the endpoint at once, a long failure streak disables it
too, and an event whose retries run out ends ``failed``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from messaging.claims import claim
from messaging.models import Message, Recipient, WebhookEndpoint, WebhookEvent


def emit(session: Session, app: str, event_type: str, dedupe_key: str, data: dict[str, Any], *,
         now: datetime | None = None) -> int:
    """Queue ``event_type`` to each enabled endpoint of ``app`` subscribed to it (not committed)."""
    now = now or utcnow()
    endpoints = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.app == app,
                                                              WebhookEndpoint.enabled.is_(True))).all()
    count = 0
    for endpoint in endpoints:
        if event_type not in endpoint.event_types and "*" not in endpoint.event_types:
            continue
        exists = session.scalar(select(WebhookEvent.id).where(WebhookEvent.endpoint_id == endpoint.id,
                                                              WebhookEvent.dedupe_key == dedupe_key))
        if exists:
            continue
        payload = {"type": event_type, "timestamp": now.isoformat(), "data": data}
        session.add(WebhookEvent(id=f"msg_{uuid.uuid4().hex}", endpoint_id=endpoint.id, dedupe_key=dedupe_key,
                                 event_type=event_type, payload=payload, next_attempt_at=now, created_at=now))
        count += 1
    return count


def completion_payload(session: Session, message_id: str) -> dict[str, Any]:
    counts = dict(session.execute(select(Recipient.status, func.count()).where(Recipient.message_id == message_id)
                                  .group_by(Recipient.status)).all())
    message = session.get(Message, message_id)
    return {"message_id": message_id, "idempotency_key": message.idempotency_key if message else None,
            "recipients": counts}


def jittered(seconds: float, rand: Callable[[], float] = random.random) -> timedelta:
    """±10 % so that many retries due at once do not arrive at once."""
    return timedelta(seconds=seconds * (0.9 + 0.2 * rand()))


def deliver_events(session: Session, batch: list[tuple[str, int]], post: Callable, settings, *,
                   now: Callable[[], datetime] = utcnow, rand=None) -> dict[str, int]:
    """One attempt per (event id, attempt); ``post(endpoint, id, body, now) -> (status, error)`` (commit).

    The batch's attempts are claimed and the claims committed before anything is posted, so a
    second copy of the task (a redelivery, a retry beside a slow first run) posts nothing.
    """
    counts: dict[str, int] = {}
    begin_write(session)  # the claims decide on the rows' latest state (SQLite)
    claimed_at = now()
    claimed = []
    for event_id, attempt in batch:
        if claim(session, WebhookEvent, event_id, attempt, claimed_at):
            claimed.append((event_id, attempt))
        else:
            counts["skipped"] = counts.get("skipped", 0) + 1
    session.commit()
    for event_id, attempt in claimed:
        event = session.get(WebhookEvent, event_id, populate_existing=True)
        endpoint = session.get(WebhookEndpoint, event.endpoint_id)
        at = now()
        if not endpoint.enabled:
            event.status, event.last_error = "failed", "endpoint_disabled"
        else:
            body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()
            status, error = post(endpoint, event.id, body, at)
            if status is not None and 200 <= status < 300:
                event.status, event.last_error, endpoint.failure_streak = "delivered", None, 0
            else:
                event.last_error = error[:255]
                endpoint.failure_streak += 1
                if status == 410:
                    endpoint.enabled, endpoint.disabled_reason = False, "the endpoint answered 410 Gone"
                elif endpoint.failure_streak >= settings.webhook_disable_after:
                    endpoint.enabled = False
                    endpoint.disabled_reason = f"{endpoint.failure_streak} failures in a row"
                if endpoint.enabled and attempt < len(settings.webhook_schedule):
                    event.status = "queued"
                    delay = settings.webhook_schedule[attempt]
                    event.next_attempt_at = at + (jittered(delay, rand) if rand else jittered(delay))
                else:
                    event.status = "failed"
        counts[event.status] = counts.get(event.status, 0) + 1
    # One commit of the outcomes per batch: a worker lost meanwhile leaves its events "sending"
    # and the sweeper queues them again; their repeated posts carry the same webhook-ids, which
    # receivers deduplicate by (that is what the id is for).
    session.commit()
    return counts
