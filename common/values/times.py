"""Time as people here read it: the China Standard Time zone and how pages show an instant.

Stored times are aware UTC (:func:`common.db.utcnow`); only what a person reads is local.
The zone is a fixed UTC+8 rather than ``ZoneInfo("Asia/Shanghai")``: China has kept no
daylight saving time since 1991, and a fixed offset needs no tz database on the host (a
slim image or Windows has none), so every node formats the same instant the same way.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8), "CST")  # Asia/Shanghai, as displayed


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``value`` in China time, e.g. ``2026-12-01 20:15``; ``""`` for ``None``.

    A naive value is taken as UTC, as every stored time is (``astimezone`` would read it in
    the host's zone instead).
    """
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(CHINA).strftime(fmt)


def local_date(value: datetime | None) -> str:
    """The China-time date of ``value``, ``YYYY-MM-DD``; ``""`` for ``None``."""
    return local_time(value, "%Y-%m-%d")


def today() -> date:
    """Today's date in China (what a birth date or a due date is compared with)."""
    return datetime.now(CHINA).date()
