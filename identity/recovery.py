"""Password reset by a single-use link sent to the person's mobile.

The link goes by SMS through the message hub: the reset writes it to identity's notification
outbox in the transaction that creates the token (:mod:`identity.notify`), and the worker sends
it (a hub that is down delays the SMS, never loses it or half-writes the reset). Its absolute
URL comes from ``link_for`` (built from configuration), never from the request.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.db import utcnow
from common.errors import Problem
from identity import accounts, notify
from identity.models import PasswordReset, Person
from identity.oauth.login_sessions import revoke_all_login_sessions

logger = structlog.get_logger("xsn.identity.recovery")


class InvalidResetToken(Problem):
    status, code, title = 400, "invalid_reset_token", "The reset link is invalid, used or expired"


def _token_hash(token: str) -> str:
    return sm3(token.encode()).hex()


def request_password_reset(session: Session, *, id_number: str, mobile: str, link_for: Callable[[str], str],
                           ttl: timedelta) -> bool:
    """Queue a reset link to the mobile when ID number and mobile belong to the same person (commit).

    Returns whether a link was queued (the caller then asks for its delivery); callers show the
    same answer either way, so the page does not reveal which ID numbers are registered.
    :raise accounts.InvalidInput: malformed input.
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
    notify.enqueue_reset_link(session, accounts.parse_mobile(mobile), link_for(token),
                              minutes=max(1, int(ttl.total_seconds() // 60)))
    session.commit()
    logger.info("password_reset_link_queued", subject=person.id)
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
    accounts.set_password(session, person, new_password)  # hashed before the claim: no lock held meanwhile
    # Used up in one conditional UPDATE: of two uses of one link at once (each having read it
    # unused) exactly one sets its password; the other is refused and its password rolled back.
    claimed = session.execute(update(PasswordReset).where(PasswordReset.id == row.id,
                                                          PasswordReset.used_at.is_(None))
                              .values(used_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        session.rollback()
        raise InvalidResetToken()
    revoke_all_login_sessions(session, person)
    session.commit()
    return person

