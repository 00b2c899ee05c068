"""Accepting a message: every check first, then one transaction writes the whole outbox.

Nothing is queued here: the message, its recipients and each recipient's first delivery are
committed together, and the relay (:mod:`messaging.delivery`) hands due deliveries to the
workers. A request that fails any check writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Forbidden, NotFound, ValidationFailed
from common.values.email import parse_email
from messaging import policy, rendering
from messaging.directory import Directory
from messaging.models import App, Delivery, Job, Message, Recipient, Template

MOBILE = re.compile(r"^1[3-9]\d{9}$")


class IdempotencyConflict(ValidationFailed):
    code, title = "idempotency_key_reused", "Idempotency key reused with a different request"


class UnknownTemplate(NotFound):
    status, code, title = 422, "unknown_template", "No such template for this app"


class TemplateNotApproved(ValidationFailed):
    code, title = "template_not_approved", "The template's SMS text is not approved"


class ChannelNotSupported(ValidationFailed):
    code, title = "channel_not_supported", "The template has no content for a requested channel"


class InvalidRecipients(ValidationFailed):
    code, title = "invalid_recipients", "One or more recipients are invalid"


class UnknownRecipients(ValidationFailed):
    code, title = "unknown_recipient", "One or more recipients are not known to identity"


class RecipientNotAllowed(Forbidden):
    code, title = "recipient_not_allowed", "This app may not send to raw addresses"


@dataclass(frozen=True)
class SendLimits:
    max_recipients: int = 10_000
    batch_size: int = 100
    app_limit: str = "600/minute"  # requests per app
    recipient_limit: str = "30/hour"  # non-critical messages per person or address
    digest_window: float = 600.0  # seconds a low-priority message with a digest key is held


@dataclass
class Accepted:
    message: Message
    replay: bool


def normalise_phone(raw: str) -> str:
    """:raise ValueError: not a mainland mobile number."""
    phone = re.sub(r"[\s-]", "", raw)
    phone = phone.removeprefix("+86").removeprefix("0086")
    if not MOBILE.match(phone):
        raise ValueError("not a mainland China mobile number")
    return phone


def check_email(raw: str) -> str:
    """:raise ValueError: not a plain e-mail address (``common.values.email``, as identity checks it)."""
    return parse_email(raw)


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def latest_template(session: Session, app: str, code: str) -> Template:
    """:raise UnknownTemplate:"""
    template = session.scalars(select(Template).where(Template.app == app, Template.code == code)
                               .order_by(Template.version.desc()).limit(1)).first()
    if template is None:
        raise UnknownTemplate(f"the app {app} has no template {code!r}")
    return template


def render_contents(template: Template, values: dict[str, str], channels: list[str]) -> dict[str, dict[str, Any]]:
    """Rendered content per requested channel.

    :raise ChannelNotSupported: :raise TemplateNotApproved: :raise rendering.TemplateUnsafe:
    :raise rendering.ContentTooLarge:
    """
    contents: dict[str, dict[str, Any]] = {}
    title = rendering.render(template.title, values, limit=255)
    body = rendering.render(template.body, values)
    for channel in channels:
        if channel == "inapp":
            contents["inapp"] = {"title": title, "body": body}
        elif channel == "email":
            html = rendering.render(template.email_html, values, html=True, limit=rendering.MAX_HTML_CHARS) \
                if template.email_html else None
            contents["email"] = {"subject": title, "text": body, "html": html}
        elif channel == "sms":
            if not template.sms_text or not template.sms_template_code:
                raise ChannelNotSupported(f"template {template.code} has no SMS text")
            if template.sms_approved_at is None:
                raise TemplateNotApproved(f"template {template.code} v{template.version} awaits SMS approval")
            contents["sms"] = {"text": rendering.render(template.sms_text, values, limit=rendering.MAX_SMS_CHARS),
                               "template_code": template.sms_template_code, "params": values}
    return contents


def _parse_recipients(raw: list[dict[str, Any]], limits: SendLimits) -> list[dict[str, str]]:
    """:raise InvalidRecipients:"""
    if not raw:
        raise InvalidRecipients("at least one recipient is needed")
    if len(raw) > limits.max_recipients:
        raise rendering.ContentTooLarge(f"at most {limits.max_recipients} recipients per request",
                                        code="too_many_recipients")
    errors: dict[str, list[str]] = {}
    parsed = []
    for index, item in enumerate(raw):
        keys = [k for k in ("subject", "phone", "email") if item.get(k)]
        if len(keys) != 1 or set(item) - {"subject", "phone", "email"}:
            errors[str(index)] = ["exactly one of subject, phone, email"]
            continue
        key, value = keys[0], item[keys[0]]
        if not isinstance(value, str) or len(value) > 254:
            errors[str(index)] = [f"{key} must be a string"]
            continue
        try:
            if key == "phone":
                value = normalise_phone(value)
            elif key == "email":
                value = check_email(value)
        except ValueError as exc:
            errors[str(index)] = [str(exc)]
            continue
        parsed.append({key: value})
    if errors:
        raise InvalidRecipients("one or more recipients are invalid", errors=errors)
    return parsed


def accept_message(session: Session, *, client_id: str, body: dict[str, Any], idempotency_key: str | None,
                   directory: Directory, limiter: policy.Limiter, limits: SendLimits = SendLimits(),
                   now: datetime | None = None) -> Accepted:
    """Validate ``body`` (the send API's request) and write the message to the outbox (commit).

    A repeat of an idempotency key with the same body returns the first message; the key's form
    is the caller's to check (the API reads it with :func:`common.web.idempotency.idempotency_key`).

    :raise IdempotencyConflict: :raise UnknownTemplate: :raise rendering.BadVariables:
    :raise rendering.TemplateUnsafe: :raise rendering.ContentTooLarge: :raise ChannelNotSupported:
    :raise TemplateNotApproved: :raise InvalidRecipients: :raise UnknownRecipients:
    :raise RecipientNotAllowed: :raise policy.RateLimited: :raise ServiceUnavailable: directory down.
    """
    now = now or utcnow()
    digest = request_hash(body)
    if idempotency_key is not None:
        existing = _by_key(session, client_id, idempotency_key)
        if existing is not None:
            if existing.request_hash != digest:
                raise IdempotencyConflict("this Idempotency-Key was used for a different message")
            return Accepted(existing, replay=True)
    limiter.check(f"messaging:app:{client_id}", limits.app_limit)

    app = session.get(App, client_id)
    template = latest_template(session, client_id, body["template"])
    values = rendering.check_variables(template.variables, body.get("variables", {}))
    channels = list(dict.fromkeys(body.get("channels") or ["inapp"]))
    contents = render_contents(template, values, channels)
    recipients = _parse_recipients(body["recipients"], limits)
    if any("subject" not in r for r in recipients) and not (app and app.may_send_raw):
        raise RecipientNotAllowed(f"the app {client_id} may send to people by identity subject only")
    subjects = [r["subject"] for r in recipients if "subject" in r]
    contacts = directory.lookup(subjects) if subjects else {}
    unknown = sorted(set(subjects) - set(contacts))
    if unknown:
        raise UnknownRecipients("not known to identity", errors={"subjects": unknown[:50]})

    category, priority = body.get("category", "notice"), body.get("priority", "normal")
    critical = priority == "critical"
    scheduled = body.get("scheduled_at")
    due = max(now, scheduled) if scheduled else now
    opt_outs = policy.opt_outs(session, subjects, category) if not critical else {}
    quiet = policy.quiet_hours(session, subjects) if not critical else {}
    digest_key = body.get("digest_key") if priority == "low" else None
    if digest_key:
        due += timedelta(seconds=limits.digest_window)

    message = Message(id=f"msg_{uuid.uuid4().hex}", app=client_id, idempotency_key=idempotency_key,
                      request_hash=digest, template_id=template.id, category=category, priority=priority,
                      channels=channels, digest_key=digest_key, scheduled_at=scheduled, contents=contents,
                      recipient_count=len(recipients), pending_count=len(recipients), created_at=now)
    if len(recipients) > limits.batch_size:
        job = Job(id=f"job_{uuid.uuid4().hex}", app=client_id, total=len(recipients),
                  batches=math.ceil(len(recipients) / limits.batch_size), created_at=now)
        session.add(job)
        message.job_id = job.id
    session.add(message)
    rows: list[tuple[Recipient, datetime]] = []
    suppressed = 0
    for seq, target in enumerate(recipients):
        contact = contacts.get(target.get("subject", ""))
        address = policy.Address(subject=target.get("subject"),
                                 phone=target.get("phone") or (contact.mobile if contact else None),
                                 email=target.get("email") or (contact.email if contact else None))
        usable = [c for c in channels if address.reaches(c) and c not in opt_outs.get(address.subject, set())]
        recipient = Recipient(message_id=message.id, seq=seq, subject=address.subject, phone=address.phone,
                              email=address.email, channels=usable, updated_at=now)
        if not usable:
            recipient.status, recipient.reason = "suppressed", "opted_out" if address.subject in opt_outs \
                else "no_channel"
            suppressed += 1
        elif not critical and not limiter.hit(f"messaging:to:{address.key()}", limits.recipient_limit):
            if len(recipients) == 1:
                raise policy.RateLimited(f"too many messages to this recipient; limit {limits.recipient_limit}",
                                         code="recipient_rate_limited", retry_after=60)
            recipient.status, recipient.reason = "suppressed", "rate_limited"
            suppressed += 1
        session.add(recipient)
        at = policy.after_quiet_hours(due, quiet.get(address.subject), usable[0]) if usable else due
        if at > due and recipient.status is None:  # queued (the column's default), not suppressed
            recipient.reason = "quiet_hours"  # cleared when the held delivery goes out
        rows.append((recipient, at))
    message.pending_count -= suppressed
    if message.pending_count == 0:
        message.status, message.completed_at = "completed", now
    try:
        session.flush()  # the message row first: a key taken meanwhile fails here (PostgreSQL waits for it)
        session.add_all(Delivery(message_id=message.id, recipient_id=r.id, channel=r.channels[0],
                                 next_attempt_at=at, updated_at=now)
                        for r, at in rows if r.status == "queued")
        session.commit()
    except IntegrityError:
        # The same key's other request committed while this one was checking (a client that
        # repeats after a gateway timeout while the first is still being accepted): one message.
        session.rollback()
        winner = _by_key(session, client_id, idempotency_key)
        if winner is None:
            raise
        if winner.request_hash != digest:
            raise IdempotencyConflict("this Idempotency-Key was used for a different message") from None
        return Accepted(winner, replay=True)
    return Accepted(message, replay=False)


def _by_key(session: Session, client_id: str, idempotency_key: str | None) -> Message | None:
    if idempotency_key is None:
        return None
    return session.scalars(select(Message).where(Message.app == client_id,
                                                 Message.idempotency_key == idempotency_key)).first()


def get_message(session: Session, client_id: str, message_id: str) -> Message:
    """:raise NotFound: no such message of this app (another app's is not found either)."""
    message = session.get(Message, message_id)
    if message is None or message.app != client_id:
        raise NotFound("no such message", code="message_not_found")
    return message


def recipient_counts(session: Session, message_id: str) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(select(Recipient.status, func.count()).where(Recipient.message_id == message_id)
                           .group_by(Recipient.status))
    return {status: count for status, count in rows}


def recipients_page(session: Session, message_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
    """Recipients by ``seq``, each with ``next_attempt_at``: when its queued delivery is due (the
    end of quiet hours, a scheduled time, a retry), else None."""
    recipients = list(session.scalars(select(Recipient).where(Recipient.message_id == message_id)
                                      .order_by(Recipient.seq).offset(offset).limit(limit)))
    due = dict(session.execute(select(Delivery.recipient_id, Delivery.next_attempt_at)
                               .where(Delivery.recipient_id.in_([r.id for r in recipients]),
                                      Delivery.status == "queued")).all()) if recipients else {}
    return [{"seq": r.seq, "subject": r.subject, "phone": r.phone, "email": r.email, "status": r.status,
             "channel": r.channel, "reason": r.reason, "updated_at": r.updated_at, "next_attempt_at": due.get(r.id)}
            for r in recipients]

