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

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from messaging.claims import claim, still_claimed
from messaging.models import Message, Recipient, WebhookEndpoint, WebhookEvent

log = structlog.get_logger("xsn.messaging.events")


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

    Each event is claimed just before its own post, not the batch at once: a batch of 100 to a
    slow receiver outlasts ``stuck_after``, the sweeper re-queues the events still waiting, and
    a claim made long before would let this worker post them beside the new attempt (and count
    the endpoint's failure twice). A second copy of the task (a redelivery, a retry beside a
    slow first run) finds each event claimed and posts nothing (``skipped``). Each post is made
    with no transaction open (PostgreSQL: no session idle in transaction for the receiver's
    timeout; SQLite: no write lock held) and its outcome committed just after it. An outcome the
    event's row no longer holds is dropped (``dropped``; see :func:`messaging.claims.still_claimed`).
    An event whose claim or record raises is rolled back, logged by error type and counted
    ``error``; the batch goes on and the sweeper re-queues that one.
    """
    counts: dict[str, int] = {}
    for event_id, attempt in batch:
        try:
            outcome = _attempt(session, event_id, attempt, post, settings, now, rand)
        except Exception as exc:  # one event's bug must not leave the rest dispatched until swept
            session.rollback()
            log.error("webhook_event_failed", id=event_id, attempt=attempt, error_type=type(exc).__name__)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    # A worker lost before an outcome's commit leaves its event "sending" and the sweeper queues
    # it again; the repeated post carries the same webhook-id, which receivers deduplicate by
    # (that is what the id is for).
    return counts


def _attempt(session: Session, event_id: str, attempt: int, post: Callable, settings,
             now: Callable[[], datetime], rand) -> str:
    """Claim, post and record one event's attempt (commit); its new status, ``skipped`` or ``dropped``."""
    begin_write(session)  # the claim decides on the row's latest state (SQLite)
    if not claim(session, WebhookEvent, event_id, attempt, now()):
        session.rollback()
        return "skipped"
    event = session.get(WebhookEvent, event_id, populate_existing=True)
    # As last committed: a concurrent batch may have disabled it (410, a failure streak).
    endpoint = session.get(WebhookEndpoint, event.endpoint_id, populate_existing=True)
    session.commit()  # the claim, and the reads' transaction ends before the post
    at = now()
    posted, status, error = endpoint is not None and endpoint.enabled, None, "endpoint_disabled"
    if posted:
        body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()
        status, error = post(endpoint, event.id, body, at)
    outcome = _record(session, event, attempt, event.endpoint_id, (posted, status, error), at, settings, rand)
    session.commit()
    return outcome


def _record(session: Session, event: WebhookEvent, attempt: int, endpoint_id: str,
            answer: tuple[bool, int | None, str | None], at: datetime, settings, rand) -> str:
    """Write one attempt's ``answer`` (posted?, HTTP status or None, error) on its endpoint and,
    if its row still holds it, on its event (not committed); the event's new status, or ``dropped``.

    The endpoint's failure streak is counted in the database (``failure_streak + 1 ... RETURNING``),
    not in the loaded row: concurrent batches to one endpoint each read the same streak and
    wrote it back one higher, losing counts, so a failing endpoint might never be disabled. The
    post happened either way, so the endpoint's count holds it even when the event's outcome is
    dropped.
    """
    posted, status, error = answer
    delivered = status is not None and 200 <= status < 300
    enabled = posted  # not posted: the endpoint was disabled
    if delivered:
        # Only an endpoint with a streak is written: a success elsewhere does not lock its row.
        session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id,
                                                      WebhookEndpoint.failure_streak != 0)
                        .values(failure_streak=0).execution_options(synchronize_session=False))
    elif posted:
        # ``first``: the endpoint may have been deleted meanwhile; no row counts as disabled.
        row = session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
            .values(failure_streak=WebhookEndpoint.failure_streak + 1)
            .returning(WebhookEndpoint.failure_streak, WebhookEndpoint.enabled)
            .execution_options(synchronize_session=False)).first()
        streak, enabled = row if row is not None else (0, False)
        if enabled and (status == 410 or streak >= settings.webhook_disable_after):
            reason = "the endpoint answered 410 Gone" if status == 410 else f"{streak} failures in a row"
            session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                            .values(enabled=False, disabled_reason=reason)
                            .execution_options(synchronize_session=False))
            enabled = False
    if not still_claimed(session, WebhookEvent, event.id, attempt, "delivered" if delivered else (error or "")[:64]):
        return "dropped"
    if delivered:
        event.status, event.last_error = "delivered", None
    else:
        event.last_error = (error or "")[:255]
        if enabled and attempt < len(settings.webhook_schedule):
            event.status = "queued"
            delay = settings.webhook_schedule[attempt]
            event.next_attempt_at = at + (jittered(delay, rand) if rand else jittered(delay))
        else:
            event.status = "failed"
    return event.status
