"""Delivery you can trust: relay, attempts, retries, fallback, sweeper.

A carrier's receipts are in :mod:`messaging.receipts`, dead letters and their replay in
:mod:`messaging.dead_letters`.

The outbox rows are the truth. The relay claims due ``queued`` deliveries (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several relays never claim the same row), marks them
``dispatched`` with the next attempt number, commits, and only then hands their ids to the
workers in batches. A worker runs an attempt only if it claims it: one conditional UPDATE
from ``dispatched`` with that attempt number to ``sending``, committed before anything is sent,
so of two copies of one task (a broker redelivery, a retry beside a slow first run) exactly one
sends and the other does nothing. A task lost with its worker before its claim is redelivered
by the broker (``acks_late``, ``reject_on_worker_lost``); a row left ``dispatched`` or
``sending`` (its worker died mid-send: whether the send went out is unknown) is put back to
``queued`` by the sweeper once it is stuck past a deadline, as a new attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db import begin_write, utcnow
from messaging import digest, events, policy
from messaging.channels import Channel, Outcome, Outgoing
from messaging.claims import IN_FLIGHT, claim, still_claimed
from messaging.events import jittered
from messaging.models import App, Delivery, Message, Recipient, WebhookEvent

log = structlog.get_logger("xsn.messaging.delivery")


class Dispatcher(Protocol):
    """Hands claimed ids to workers: Celery in the services, inline in tests."""

    def deliveries(self, batch: list[tuple[int, int]]) -> None: ...

    def events(self, batch: list[tuple[str, int]]) -> None: ...


@dataclass(frozen=True)
class DeliverySettings:
    retry_schedule: tuple[float, ...] = (5, 30, 120, 600, 1800)  # seconds after attempt 1, 2, ...
    webhook_schedule: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)  # Svix
    batch_size: int = 100
    stuck_after: float = 120.0  # a dispatched or sending row older than this was lost with its worker
    webhook_disable_after: int = 100  # consecutive failures


# -- relay ------------------------------------------------------------------------------------------
def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def relay(session: Session, dispatcher: Dispatcher, settings: DeliverySettings, *, now: datetime | None = None,
          limit: int = 2000) -> int:
    """Claim due deliveries and webhook events, commit, then dispatch them in batches.

    The claim is conditional (``status = 'queued'``) and returns the rows it changed with
    their new attempt numbers: on SQLite, where ``FOR UPDATE SKIP LOCKED`` does not exist, two
    relays may select the same rows, but only one of them changes each.
    """
    now = now or utcnow()
    ids = session.scalars(select(Delivery.id).where(Delivery.status == "queued", Delivery.next_attempt_at <= now)
                          .order_by(Delivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True)).all()
    claimed: list = []
    for chunk in _chunks(list(ids), 500):
        claimed += session.execute(update(Delivery).where(Delivery.id.in_(chunk), Delivery.status == "queued")
                                   .values(status="dispatched", attempt=Delivery.attempt + 1, dispatched_at=now)
                                   .returning(Delivery.id, Delivery.channel, Delivery.attempt)).all()
    event_ids = session.scalars(select(WebhookEvent.id)
                                .where(WebhookEvent.status == "queued", WebhookEvent.next_attempt_at <= now)
                                .order_by(WebhookEvent.next_attempt_at).limit(limit)
                                .with_for_update(skip_locked=True)).all()
    events_claimed: list = []
    for chunk in _chunks(list(event_ids), 500):
        events_claimed += session.execute(
            update(WebhookEvent).where(WebhookEvent.id.in_(chunk), WebhookEvent.status == "queued")
            .values(status="dispatched", attempt=WebhookEvent.attempt + 1, dispatched_at=now)
            .returning(WebhookEvent.id, WebhookEvent.attempt)).all()
    session.commit()
    by_channel: dict[str, list[tuple[int, int]]] = {}
    for row in sorted(claimed):
        by_channel.setdefault(row.channel, []).append((row.id, row.attempt))
    for batch in by_channel.values():
        for chunk in _chunks(batch, settings.batch_size):
            dispatcher.deliveries(chunk)
    for chunk in _chunks(sorted((row.id, row.attempt) for row in events_claimed), settings.batch_size):
        dispatcher.events(chunk)
    return len(claimed) + len(events_claimed)


def sweep(session: Session, settings: DeliverySettings, *, now: datetime | None = None) -> int:
    """Put rows dispatched or claimed (``sending``) longer than ``stuck_after`` ago back to
    ``queued`` (commit); a claim sets ``dispatched_at`` again, so that counts from the claim."""
    now = now or utcnow()
    deadline = now - timedelta(seconds=settings.stuck_after)
    count = session.execute(update(Delivery).where(Delivery.status.in_(IN_FLIGHT), Delivery.dispatched_at < deadline)
                            .values(status="queued", next_attempt_at=now)).rowcount
    count += session.execute(update(WebhookEvent).where(WebhookEvent.status.in_(IN_FLIGHT),
                                                        WebhookEvent.dispatched_at < deadline)
                             .values(status="queued", next_attempt_at=now)).rowcount
    session.commit()
    return count


# -- attempts ---------------------------------------------------------------------------------------
@dataclass
class _Attempt:
    delivery: Delivery
    recipient: Recipient
    message: Message
    members: list[tuple[Delivery, Recipient, Message]]  # digest companions sharing this send
    member_attempts: list[int]  # the attempt each companion was claimed with
    item: Outgoing


def deliver_batch(session: Session, batch: list[tuple[int, int]], channels: dict[str, Channel],
                  settings: DeliverySettings, *, now: Callable[[], datetime] = utcnow) -> dict[str, int]:
    """Run one attempt for each (delivery id, attempt); counts by outcome.

    Reads first, claims each attempt and commits the claims, then sends with no write
    transaction open (on SQLite a write holds the one write lock, and the API must not wait for
    a batch of SMTP sends), then records the outcomes in one transaction. Channels that commit
    each item (``commit_each``, one send per item: :func:`_one_by_one`) have each item claimed
    just before its own send and its outcome recorded just after it; an item whose claim or
    record raises is rolled back, logged and counted ``error``, and the batch goes on (its row
    waits for the sweeper). An outcome is recorded only while its row is still ``sending`` with
    that attempt (:func:`_record`); one dropped is counted ``dropped``.
    """
    counts: dict[str, int] = {}
    try:
        loaded = _load(session, [delivery_id for delivery_id, _attempt in batch])  # noqa: F841 - held
        # An item claimed only when its turn comes: one still waiting when the sweeper re-queues
        # it (a slow carrier, a long batch) is skipped here, not sent beside the new attempt.
        one_by_one = {(d, a) for d, a in batch if _one_by_one(channels, session.get(Delivery, d))}
        begin_write(session)  # the claims below decide on the rows' latest state (SQLite)
        attempts = []
        dropped: set[int] = set()  # outcomes of attempts the rows no longer hold
        claimed_at = now()
        for delivery_id, attempt in batch:
            if (delivery_id, attempt) in one_by_one:
                continue
            prepared = _prepare(session, delivery_id, attempt, claimed_at)
            if prepared is None:
                counts["skipped"] = counts.get("skipped", 0) + 1
            else:
                attempts.append(prepared)
        # Committed before anything is sent: a second copy of this task finds the rows claimed.
        session.commit()
        batched = _send_batches(session, channels, attempts)
        outcomes = [(prepared, batched.get(prepared.delivery.id) or _send(session, channels, prepared))
                    for prepared in attempts]
        for prepared, outcome in outcomes:
            _record(session, prepared, outcome, settings, now(), dropped)
        settle(session, now())
        session.commit()
        for delivery_id, attempt in batch:
            if (delivery_id, attempt) not in one_by_one:
                continue
            try:
                prepared = _claim_send_record(session, channels, delivery_id, attempt, settings, now, dropped)
            except Exception as exc:  # one item's bug must not leave the rest dispatched until swept
                session.rollback()
                session.info.pop("xsn_finished", None)  # counts of the rolled-back outcome
                # The type, not the message: a driver's message can carry the phone number.
                log.error("delivery_item_failed", id=delivery_id, attempt=attempt, error_type=type(exc).__name__)
                counts["error"] = counts.get("error", 0) + 1
                continue
            if prepared is None:
                counts["skipped"] = counts.get("skipped", 0) + 1
            else:
                attempts.append(prepared)
        for prepared in attempts:
            status = "dropped" if prepared.delivery.id in dropped else prepared.delivery.status
            counts[status] = counts.get(status, 0) + 1
    finally:
        for channel in channels.values():
            channel.close()
    return counts


def _claim_send_record(session: Session, channels: dict[str, Channel], delivery_id: int, attempt: int,
                       settings: DeliverySettings, now: Callable[[], datetime], dropped: set[int]) -> _Attempt | None:
    """One item of a channel that sends one at a time (commit): claimed just before its send, its
    outcome recorded just after it; None if it was not ours to run."""
    begin_write(session)
    prepared = _prepare(session, delivery_id, attempt, now())
    session.commit()
    if prepared is not None:
        _record(session, prepared, _send(session, channels, prepared), settings, now(), dropped)
        settle(session, now())
        session.commit()
    return prepared


def _one_by_one(channels: dict[str, Channel], delivery: Delivery | None) -> bool:
    """Whether ``delivery``'s channel sends and commits one item at a time (SMS)."""
    channel = channels.get(delivery.channel) if delivery is not None else None
    return channel is not None and getattr(channel, "commit_each", True) and not hasattr(channel, "send_batch")


def _load(session: Session, ids: list[int]) -> list:
    """Bring a batch's rows into the session in four queries (the loop then finds them there).

    The caller holds the returned list: the session's identity map keeps rows only while
    something references them.
    """
    deliveries = session.scalars(select(Delivery).where(Delivery.id.in_(ids))).all()
    recipients = session.scalars(select(Recipient).where(Recipient.id.in_({d.recipient_id for d in deliveries})))
    messages = session.scalars(select(Message).where(Message.id.in_({d.message_id for d in deliveries}))).all()
    apps = session.scalars(select(App).where(App.client_id.in_({m.app for m in messages}))).all()
    return [*deliveries, *recipients.all(), *messages, *apps]


def _prepare(session: Session, delivery_id: int, attempt: int, now: datetime) -> _Attempt | None:
    """Claim the attempt and build what is sent (not committed); None if it is not ours to run."""
    if not claim(session, Delivery, delivery_id, attempt, now):
        return None
    delivery = session.get(Delivery, delivery_id, populate_existing=True)  # as claimed, not as loaded
    recipient = session.get(Recipient, delivery.recipient_id)
    message = session.get(Message, delivery.message_id)
    app = session.get(App, message.app)
    group = digest.take_group(session, delivery, message, recipient)
    members = [(d, session.get(Recipient, d.recipient_id), session.get(Message, d.message_id)) for d in group]
    content = digest.combine(delivery.channel, [m.contents[d.channel] for d, _r, m in members]
                             + [message.contents[delivery.channel]])
    item = Outgoing(delivery_id=delivery.id, attempt=attempt, message_id=message.id, app=message.app,
                    category=message.category, subject=recipient.subject, phone=recipient.phone,
                    email=recipient.email, content=content, sign_name=app.sms_sign_name if app else "西安政务")
    return _Attempt(delivery, recipient, message, members, [d.attempt for d in group], item)


def _send_batches(session: Session, channels: dict[str, Channel], attempts: list[_Attempt]) -> dict[int, Outcome]:
    """Outcomes by delivery id from channels that send many items at once (``send_batch``)."""
    outcomes: dict[int, Outcome] = {}
    for name, channel in channels.items():
        items = [a.item for a in attempts if a.delivery.channel == name]
        if items and hasattr(channel, "send_batch"):
            try:
                outcomes.update(zip([i.delivery_id for i in items], channel.send_batch(session, items), strict=True))
            except Exception as exc:  # an adapter bug must not lose the rows: retry them
                outcomes.update({i.delivery_id: Outcome("retry", error=f"{type(exc).__name__}") for i in items})
    return outcomes


def _send(session: Session, channels: dict[str, Channel], prepared: _Attempt) -> Outcome:
    try:
        return channels[prepared.delivery.channel].send(session, prepared.item)
    except Exception as exc:  # an adapter bug must not lose the row: retry it like a transient failure
        return Outcome("retry", error=f"{type(exc).__name__}: {str(exc)[:150]}")


def _record(session: Session, prepared: _Attempt, outcome: Outcome, settings: DeliverySettings,
            now: datetime, dropped: set[int]) -> None:
    """Apply ``outcome`` to each row of the attempt that still holds it (not committed); the
    delivery's id goes into ``dropped`` if its row does not.

    Each row is checked and locked first (:func:`messaging.claims.still_claimed`), by the
    attempt number the task was handed, not by the loaded row's: a send that outlasted
    ``stuck_after`` finds its row re-queued, or sent again by a newer attempt, and its outcome
    would otherwise overwrite that attempt's state and count the recipient off its message twice.
    """
    if still_claimed(session, Delivery, prepared.delivery.id, prepared.item.attempt, outcome.status):
        apply_outcome(session, prepared.delivery, prepared.recipient, prepared.message, outcome, settings, now=now)
    else:
        dropped.add(prepared.delivery.id)
    for (member, member_recipient, member_message), attempt in zip(prepared.members, prepared.member_attempts,
                                                                   strict=True):
        if not still_claimed(session, Delivery, member.id, attempt, outcome.status):
            continue
        # The group shares the one send's fate; a retry puts every member back in the queue.
        if outcome.status == "delivered":
            member.provider_id = f"digest:{prepared.delivery.id}"
        apply_outcome(session, member, member_recipient, member_message, outcome, settings, now=now)


def apply_outcome(session: Session, delivery: Delivery, recipient: Recipient, message: Message, outcome: Outcome,
                  settings: DeliverySettings, *, now: datetime) -> None:
    delivery.updated_at = recipient.updated_at = now
    if outcome.provider_id:
        delivery.provider_id = outcome.provider_id
    if outcome.status == "delivered":
        delivery.status = "delivered"
        recipient.channel = delivery.channel
        finish_recipient(session, message, recipient, "delivered", None, now)
    elif outcome.status == "sent":
        delivery.status = recipient.status = "sent"
        recipient.channel, recipient.reason = delivery.channel, None
    elif outcome.status == "retry" and delivery.attempt <= len(settings.retry_schedule):
        delivery.status, delivery.last_error = "queued", (outcome.error or "")[:255]
        delivery.next_attempt_at = now + jittered(settings.retry_schedule[delivery.attempt - 1])
    else:
        fail_delivery(session, delivery, recipient, message, outcome.error or "failed", now)


def fail_delivery(session: Session, delivery: Delivery, recipient: Recipient, message: Message, reason: str,
                  now: datetime) -> None:
    """Fall back to the recipient's next channel, or give up: dead letter, recipient failed.

    The next channel honours the person's quiet hours as the first one did at acceptance: an
    e-mail that bounced for good at 23:00 does not become an SMS at 23:00.
    """
    delivery.status, delivery.last_error = "failed", reason[:255]
    remaining = recipient.channels[recipient.channels.index(delivery.channel) + 1:] \
        if delivery.channel in recipient.channels else []
    if remaining:
        window = policy.quiet_hours(session, [recipient.subject]).get(recipient.subject) \
            if recipient.subject and message.priority != "critical" else None
        due = policy.after_quiet_hours(now, window, remaining[0])
        session.add(Delivery(message_id=message.id, recipient_id=recipient.id, channel=remaining[0],
                             next_attempt_at=due, updated_at=now))
        recipient.status, recipient.reason = "queued", "quiet_hours" if due > now else None
        return
    delivery.dead = True
    finish_recipient(session, message, recipient, "failed", reason[:255], now)


def finish_recipient(session: Session, message: Message, recipient: Recipient, status: str, reason: str | None,
                      now: datetime) -> None:
    """Make the recipient final; the message's countdown is settled at the next :func:`settle`."""
    recipient.status, recipient.reason = status, reason
    finished = session.info.setdefault("xsn_finished", {})
    finished[message.id] = finished.get(message.id, 0) + 1
    if status == "failed":
        events.emit(session, message.app, "message.failed", f"{message.id}:{recipient.id}:failed",
                    {"message_id": message.id, "recipient": recipient.seq, "reason": reason}, now=now)


def settle(session: Session, now: datetime) -> None:
    """Count finished recipients off their messages, one UPDATE per message (before a commit).

    One statement per message: concurrent workers finishing recipients of one message count
    down exactly; the one that reaches zero completes it and queues the completion event.
    """
    finished = session.info.pop("xsn_finished", {})
    if not finished:
        return
    session.flush()
    for message_id, count in finished.items():
        left, app = session.execute(update(Message).where(Message.id == message_id)
                                    .values(pending_count=Message.pending_count - count)
                                    .returning(Message.pending_count, Message.app)).one()
        if left == 0:
            session.execute(update(Message).where(Message.id == message_id)
                            .values(status="completed", completed_at=now))
            events.emit(session, app, "message.completed", f"{message_id}:completed",
                        events.completion_payload(session, message_id), now=now)
        message = session.get(Message, message_id)
        if message is not None:
            session.expire(message)

