"""Database models of the message hub (its own database).

The outbox is the tables themselves: a message, its recipients and their first deliveries are
written in one transaction before anything is queued; the relay hands due ``deliveries`` and
``webhook_events`` rows to Celery, and a worker records each attempt's outcome on the row.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.db import make_base, utcnow

Base = make_base()

CHANNELS = ("inapp", "sms", "email")
PRIORITIES = ("low", "normal", "high", "critical")
CATEGORIES = ("verification_code", "notice", "security", "transaction", "marketing_forbidden")
# A delivery: queued (due at next_attempt_at) -> dispatched (handed to a worker) -> sending (claimed
# by one worker, see messaging.claims) -> sent | delivered | failed; "retrying" is queued again after
# a failed attempt. Final: delivered, failed, read.
DELIVERY_STATUSES = ("queued", "dispatched", "sending", "sent", "delivered", "failed", "read", "suppressed")
FINAL = frozenset({"delivered", "failed", "read", "suppressed"})


class App(Base):
    """A sending application (an OAuth client of identity) and what it may do."""

    __tablename__ = "apps"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    may_send_raw: Mapped[bool] = mapped_column(Boolean, default=False)  # raw phone / e-mail recipients
    sms_sign_name: Mapped[str] = mapped_column(String(32), default="西安政务")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Template(Base):
    """One version of an app's template; a new version is a new row. SMS content needs approval."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("app", "code", "version", name="uq_templates_app_code_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    variables: Mapped[list[str]] = mapped_column(JSON)
    title: Mapped[str] = mapped_column(String(255))  # in-app title and e-mail subject
    body: Mapped[str] = mapped_column(Text)  # in-app body (plain text)
    email_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    sms_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    sms_template_code: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the carrier's code
    sms_approved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A bulk send: one request, many recipients, tracked as one job."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    total: Mapped[int] = mapped_column(Integer)
    batches: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("app", "idempotency_key", name="uq_messages_app_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app: Mapped[str] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), nullable=True, index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id"))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[str]] = mapped_column(JSON)
    digest_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    contents: Mapped[dict[str, Any]] = mapped_column(JSON)  # rendered per channel: {channel: {...}}
    recipient_count: Mapped[int] = mapped_column(Integer)
    pending_count: Mapped[int] = mapped_column(Integer)  # recipients not final yet
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | completed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Recipient(Base):
    __tablename__ = "recipients"
    __table_args__ = (UniqueConstraint("message_id", "seq", name="uq_recipients_message_id_seq"),
                      Index("ix_recipients_subject_status", "subject", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))
    seq: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(128), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    channels: Mapped[list[str]] = mapped_column(JSON)  # the channels left to try, in order
    status: Mapped[str] = mapped_column(String(16), default="queued")
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the channel that delivered
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One recipient on one channel. ``attempt`` counts tries; (id, attempt) keys each try."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # e.g. SMS BizId
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dead: Mapped[bool] = mapped_column(Boolean, default=False)  # on the dead-letter list
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboxItem(Base):
    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_items_subject_deleted_read", "subject", "deleted", "read_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), unique=True)  # one item per delivery
    subject: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    read_at: Mapped[datetime | None] = mapped_column(nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Preference(Base):
    """A person's opt-out of one category on one channel (critical messages ignore it)."""

    __tablename__ = "preferences"
    __table_args__ = (UniqueConstraint("subject", "category", "channel", name="uq_preferences_subject_category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)


class QuietHours(Base):
    """Minutes after midnight, Asia/Shanghai; start > end wraps past midnight (22:00-07:00)."""

    __tablename__ = "quiet_hours"

    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app: Mapped[str] = mapped_column(String(128), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))  # whsec_...
    previous_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_secret_until: Mapped[datetime | None] = mapped_column(nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    failure_streak: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """One event to one endpoint; ``id`` is the ``webhook-id``, the same on every retry."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_status_next_attempt_at", "status", "next_attempt_at"),
                      UniqueConstraint("endpoint_id", "dedupe_key", name="uq_webhook_events_endpoint_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(128))  # e.g. message id + event type
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|dispatched|sending|delivered|failed
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)



importlib.import_module("messaging.console_models")  # the inbox page's sign-ins, same metadata
