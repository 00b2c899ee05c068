"""Password reset by a single-use link sent to the person's mobile.

The message hub (messaging node) does not exist yet, so the link goes through the
``PasswordResetNotifier`` seam; its embedded implementation, :class:`OutboxNotifier`,
writes the message to the ``outbox_messages`` table (readable in the demo at
``/dev/outbox``) and the log. A hub-backed notifier replaces it once messaging exists.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.crypto.pii import mask_mobile
from common.db import utcnow
from common.errors import Problem
from identity import accounts
from identity.models import OutboxMessage, PasswordReset, Person
from identity.oauth.login_sessions import revoke_all_login_sessions

logger = structlog.get_logger("xsn.identity.recovery")


class InvalidResetToken(Problem):
    status, code, title = 400, "invalid_reset_token", "The reset link is invalid, used or expired"


class PasswordResetNotifier(Protocol):
    def send_reset_link(self, session: Session, person: Person, mobile: str, link: str) -> None:
        """Deliver ``link`` to ``mobile``; part of the caller's transaction where possible."""


class OutboxNotifier:
    """Embedded notifier: the message is stored in the outbox table, never sent."""

    def send_reset_link(self, session: Session, person: Person, mobile: str, link: str) -> None:
        session.add(OutboxMessage(person_id=person.id, channel="sms", recipient_masked=mask_mobile(mobile),
                                  subject="password_reset",
                                  body=f"【西安统一身份认证】您正在重置密码，请打开链接完成操作"
                                       f"（30分钟内有效）：{link} / Reset your password: {link}"))
        logger.info("password_reset_link_outboxed", subject=person.id)


def _token_hash(token: str) -> str:
    return sm3(token.encode()).hex()


def request_password_reset(session: Session, *, id_number: str, mobile: str, notifier: PasswordResetNotifier,
                           link_for: Callable[[str], str], ttl: timedelta) -> bool:
    """Send a reset link when ID number and mobile belong to the same person (commit).

    Returns whether a link was sent; callers show the same answer either way, so the page
    does not reveal which ID numbers are registered. :raise accounts.InvalidInput: malformed input.
    """
    errors: dict[str, list[str]] = {}
    for parse, raw in ((accounts.parse_id_number, id_number), (accounts.parse_mobile, mobile)):
        try:
            parse(raw or "")
        except accounts.InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise accounts.InvalidInput(errors)
    person = accounts.find_person_by_id_number(session, id_number)
    if person is None or accounts.decrypt_mobile(session, person) != accounts.parse_mobile(mobile):
        return False
    # A new link supersedes older unused ones.
    session.execute(update(PasswordReset).where(PasswordReset.person_id == person.id,
                                                PasswordReset.used_at.is_(None)).values(used_at=utcnow()))
    token = secrets.token_urlsafe(32)
    session.add(PasswordReset(person_id=person.id, token_hash=_token_hash(token), expires_at=utcnow() + ttl))
    notifier.send_reset_link(session, person, accounts.parse_mobile(mobile), link_for(token))
    session.commit()
    return True


def check_reset_token(session: Session, token: str) -> PasswordReset:
    """:raise InvalidResetToken:"""
    row = session.scalar(select(PasswordReset).where(PasswordReset.token_hash == _token_hash(token or "")))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise InvalidResetToken()
    return row


def reset_password(session: Session, token: str, new_password: str) -> Person:
    """Set the new password, use up the token, unlock, and sign out every session (commit).

    :raise InvalidResetToken: :raise accounts.InvalidInput: weak password.
    """
    row = check_reset_token(session, token)
    person = session.get(Person, row.person_id)
    accounts.set_password(session, person, new_password)
    row.used_at = utcnow()
    revoke_all_login_sessions(session, person)
    session.commit()
    return person


def outbox(session: Session, limit: int = 50) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)))
