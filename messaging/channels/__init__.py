"""The delivery channels behind one small interface.

A channel gets an :class:`Outgoing` (one recipient, one attempt) and answers an
:class:`Outcome`. ``key`` is stable per (delivery, attempt) and ``dedupe_id`` per delivery:
channels that honour one (the SMS carrier's OutId, a Message-ID, the inbox's unique
delivery id) make a redelivered task harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    attempt: int
    message_id: str
    app: str
    category: str
    subject: str | None
    phone: str | None
    email: str | None
    content: dict[str, Any]
    sign_name: str = "西安政务"

    @property
    def dedupe_id(self) -> str:
        return f"{self.message_id}.{self.delivery_id}"


@dataclass(frozen=True)
class Outcome:
    """``status``: ``delivered`` (final), ``sent`` (a receipt will follow), ``retry`` (transient
    failure: try again later), ``failed`` (permanent for this channel: fall back or give up)."""

    status: str
    provider_id: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    name: str
    # Claim each item just before its send and commit its outcome just after (not once per
    # batch): for a receiver that cannot deduplicate and where a repeat costs (SMS). Others
    # commit per batch: a crash repeats at most one batch, which the inbox (unique delivery id)
    # and mail readers (fixed Message-ID) absorb.
    commit_each: bool

    def send(self, session: Session, item: Outgoing) -> Outcome: ...

    def close(self) -> None:
        """End a batch: release connections kept open across its items."""
