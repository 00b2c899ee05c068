"""Server-side login sessions: created at login, listed on the account page, revocable.

Flask-free. The browser holds only the session id in the signed Flask cookie; a session is
valid while its row is unrevoked and unexpired, so "sign out everywhere" takes effect at the
next request of every other browser.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound
from identity.models import LoginSession, Person

# Touching last_seen_at on every request would write on every page view.
_TOUCH_INTERVAL = timedelta(minutes=5)


class LoginSessionNotFound(NotFound):
    code, title = "session_not_found", "No such login session"


def create_login_session(session: Session, person: Person, *, amr: list[str], lifetime: timedelta,
                         ip: str | None = None, user_agent: str | None = None) -> LoginSession:
    """(commit) The ``acr`` is the person's assurance level at login time."""
    now = utcnow()
    row = LoginSession(id=secrets.token_urlsafe(32), person_id=person.id, auth_time=now, last_seen_at=now,
                       expires_at=now + lifetime, acr=person.assurance_level, amr=" ".join(amr),
                       ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:255] or None)
    session.add(row)
    session.commit()
    return row


def active_login_session(session: Session, session_id: str | None) -> LoginSession | None:
    """The session if it exists, is unrevoked and unexpired; refreshes ``last_seen_at``."""
    if not session_id or not isinstance(session_id, str):
        return None
    row = session.get(LoginSession, session_id)
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at > _TOUCH_INTERVAL:
        row.last_seen_at = now
        session.commit()
    return row


def list_login_sessions(session: Session, person: Person) -> list[LoginSession]:
    now = utcnow()
    return list(session.scalars(select(LoginSession)
                                .where(LoginSession.person_id == person.id, LoginSession.revoked_at.is_(None),
                                       LoginSession.expires_at > now)
                                .order_by(LoginSession.auth_time.desc())))


def revoke_login_session(session: Session, person: Person, session_id: str) -> None:
    """(commit) :raise LoginSessionNotFound: not one of the person's active sessions."""
    row = session.get(LoginSession, session_id)
    if row is None or row.person_id != person.id or row.revoked_at is not None:
        raise LoginSessionNotFound()
    row.revoked_at = utcnow()
    session.commit()


def revoke_all_login_sessions(session: Session, person: Person, *, keep: str | None = None) -> int:
    """(commit) Revoke every active session of the person except ``keep``; returns how many."""
    stmt = (update(LoginSession)
            .where(LoginSession.person_id == person.id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=utcnow()))
    if keep:
        stmt = stmt.where(LoginSession.id != keep)
    count = session.execute(stmt).rowcount
    session.commit()
    return count
