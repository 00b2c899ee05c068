"""Storage of the staff-console sign-ins: two small tables per service, kept server-side.

Tokens are not kept in the cookie (two consoles' access and ID tokens together overflow a
4 KB cookie); the browser holds only random handles, stored here as SHA-256 digests. The
tokens themselves are stored as SM4-GCM ciphertext under a key derived from the service's KEK
(:func:`token_cipher`): the licences holder's token carries ``idcard:full``, and whoever could
read the table could otherwise replay it at identity's userinfo for the token's lifetime.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from sqlalchemy import String, Text, delete
from sqlalchemy.orm import Mapped, mapped_column

from common.crypto.gm import GMError
from common.crypto.pii import PiiCipher
from common.db import UTCDateTime, utcnow

TokenColumn = Literal["access_token", "id_token"]


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
    # base64(nonce || SM4-GCM ciphertext || tag), see seal_tokens; the ID token is kept only as
    # the id_token_hint of the sign-out (without it identity asks the person to confirm).
    access_token: Mapped[str] = mapped_column(Text)
    id_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def digest(value: str) -> str:
    """The key a state or handle is stored under: whoever reads the table cannot replay it."""
    return hashlib.sha256(value.encode()).hexdigest()


def token_cipher(kek: bytes, service: str) -> PiiCipher:
    """The cipher of ``service``'s console tokens: its own key, derived from the KEK with its own label."""
    return PiiCipher.from_kek(kek, f"{service}:console-tokens")


def _bound_to(column: TokenColumn, handle_hash: str) -> str:
    # The column and the row as associated data: a ciphertext copied into another row (say the
    # reader's own session) or into the other column does not open there.
    return f"console_sessions.{column}:{handle_hash}"


def seal_tokens(cipher: PiiCipher, handle_hash: str, *, access_token: str, id_token: str) -> dict[str, str]:
    """The ``access_token`` and ``id_token`` columns of the session row keyed ``handle_hash``."""
    return {"access_token": cipher.encrypt(_bound_to("access_token", handle_hash), access_token),
            "id_token": cipher.encrypt(_bound_to("id_token", handle_hash), id_token)}


def open_token(cipher: PiiCipher, row: ConsoleSessionMixin, column: TokenColumn) -> str | None:
    """The token ``row`` holds in ``column``, or ``None`` when it does not open: a row written
    before the tokens were encrypted (plaintext), under another KEK, altered or moved from
    another row. The caller treats that as no session (the person signs in again)."""
    try:
        return cipher.decrypt(_bound_to(column, row.handle_hash), getattr(row, column))
    except (GMError, ValueError):  # ValueError: not base64 (binascii.Error), not UTF-8
        return None


def purge_expired(db, login_model, session_model) -> None:
    now = utcnow()
    db.execute(delete(login_model).where(login_model.expires_at < now))
    db.execute(delete(session_model).where(session_model.expires_at < now))
