"""What a person asked for and what the hub allows: opt-outs, quiet hours, rate limits.

Critical messages (e.g. a password reset) ignore opt-outs, quiet hours and digests; the
callers skip these checks for them. Quiet hours hold SMS and e-mail until the window ends;
the in-app inbox is silent, so it is never held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import Problem, ValidationFailed
from messaging.models import CATEGORIES, CHANNELS, Preference, QuietHours

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
HELD_IN_QUIET_HOURS = frozenset({"sms", "email"})


class RateLimited(Problem):
    status, code, title = 429, "rate_limited", "Too many requests"


class Limiter(Protocol):
    """``common.web.ratelimit.RateLimits`` (Redis in production, memory embedded)."""

    def hit(self, key: str, limit: str) -> bool: ...

    def check(self, key: str, limit: str) -> None: ...


@dataclass(frozen=True)
class Address:
    subject: str | None = None
    phone: str | None = None
    email: str | None = None

    def reaches(self, channel: str) -> bool:
        return {"inapp": self.subject, "sms": self.phone, "email": self.email}.get(channel) is not None

    def key(self) -> str:
        return f"sub:{self.subject}" if self.subject else f"phone:{self.phone}" if self.phone else f"email:{self.email}"


def opt_outs(session: Session, subjects: list[str], category: str) -> dict[str, set[str]]:
    """subject -> channels the person turned off for ``category``."""
    result: dict[str, set[str]] = {}
    for chunk in range(0, len(subjects), 500):
        rows = session.scalars(select(Preference).where(Preference.subject.in_(subjects[chunk:chunk + 500]),
                                                        Preference.category == category,
                                                        Preference.enabled.is_(False)))
        for row in rows:
            result.setdefault(row.subject, set()).add(row.channel)
    return result


def quiet_hours(session: Session, subjects: list[str]) -> dict[str, tuple[int, int]]:
    result: dict[str, tuple[int, int]] = {}
    for chunk in range(0, len(subjects), 500):
        for row in session.scalars(select(QuietHours).where(QuietHours.subject.in_(subjects[chunk:chunk + 500]))):
            result[row.subject] = (row.start_minute, row.end_minute)
    return result


def after_quiet_hours(due: datetime, window: tuple[int, int] | None, channel: str) -> datetime:
    """``due``, or the end of the person's quiet hours if ``due`` falls inside them."""
    if window is None or channel not in HELD_IN_QUIET_HOURS:
        return due
    start, end = window
    local = due.astimezone(CHINA)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    if not inside:
        return due
    end_today = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    return (end_today if end_today > local else end_today + timedelta(days=1)).astimezone(due.tzinfo)


# -- a person's own settings ------------------------------------------------------------------------
def preferences(session: Session, subject: str) -> list[Preference]:
    return list(session.scalars(select(Preference).where(Preference.subject == subject)
                                .order_by(Preference.category, Preference.channel)))


def set_preference(session: Session, subject: str, category: str, channel: str, enabled: bool) -> Preference:
    """(commit) :raise ValidationFailed: unknown category or channel."""
    if category not in CATEGORIES or channel not in CHANNELS:
        raise ValidationFailed("unknown category or channel", code="invalid_preference")
    row = session.scalars(select(Preference).where(Preference.subject == subject, Preference.category == category,
                                                   Preference.channel == channel)).first()
    if row is None:
        row = Preference(subject=subject, category=category, channel=channel, enabled=enabled)
        session.add(row)
    row.enabled = enabled
    session.commit()
    return row


def set_quiet_hours(session: Session, subject: str, start: str | None, end: str | None) -> QuietHours | None:
    """``HH:MM`` to ``HH:MM`` (China time), or both None to clear (commit).

    :raise ValidationFailed: malformed times or an empty window.
    """
    row = session.get(QuietHours, subject)
    if start is None and end is None:
        if row is not None:
            session.delete(row)
        session.commit()
        return None
    try:
        start_minute, end_minute = (_minutes(v or "") for v in (start, end))
    except ValueError as exc:
        raise ValidationFailed("quiet hours are HH:MM to HH:MM", code="invalid_quiet_hours") from exc
    if start_minute == end_minute:
        raise ValidationFailed("quiet hours must not be empty", code="invalid_quiet_hours")
    if row is None:
        row = QuietHours(subject=subject, start_minute=start_minute, end_minute=end_minute)
        session.add(row)
    row.start_minute, row.end_minute = start_minute, end_minute
    session.commit()
    return row


def _minutes(value: str) -> int:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(value)
    if not (0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
        raise ValueError(value)
    return int(hours) * 60 + int(minutes)
