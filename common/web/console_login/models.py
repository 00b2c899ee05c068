"""Storage of the staff-console sign-ins: two small tables per service, kept server-side.

Tokens are not kept in the cookie (two consoles' access and ID tokens together overflow a
4 KB cookie); the browser holds only random handles, stored here as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import String, Text, delete
from sqlalchemy.orm import Mapped, mapped_column

from common.db import UTCDateTime, utcnow


class ConsoleLoginMixin:
    """A sign-in in progress (``__tablename__ = "console_logins"``), keyed by SHA-256 of the state."""

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    console: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ConsoleSessionMixin:
    """A signed-in console (``__tablename__ = "console_sessions"``), keyed by SHA-256 of the cookie's handle."""

    handle_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    console: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    access_token: Mapped[str] = mapped_column(Text)
    id_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def digest(value: str) -> str:
    """The key a state or handle is stored under: whoever reads the table cannot replay it."""
    return hashlib.sha256(value.encode()).hexdigest()


def purge_expired(db, login_model, session_model) -> None:
    now = utcnow()
    db.execute(delete(login_model).where(login_model.expires_at < now))
    db.execute(delete(session_model).where(session_model.expires_at < now))
