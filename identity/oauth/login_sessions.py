"""Server-side login sessions: created at login, listed on the account page, revocable.

Flask-free. The browser holds only the session id in the signed Flask cookie; a session is
valid while its row is unrevoked and unexpired, so "sign out everywhere" takes effect at the
next request of every other browser. Revoking a session also revokes the refresh tokens
issued in it, and announces it on the revocation feed: access tokens carry the session as
``sid``, so every service (through the gateway) refuses them within seconds.

These functions flush; the use case that calls them commits.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound
from identity.models import LoginSession, Person
from identity.oauth.models import RefreshToken
from identity.oauth.refresh_tokens import revoke_families
from identity.oauth.revocations import note_revoked_session

# Touching last_seen_at on every request would write on every page view.
_TOUCH_INTERVAL = timedelta(minutes=5)


class LoginSessionNotFound(NotFound):
    code, title = "session_not_found", "No such login session"


def create_login_session(session: Session, person: Person, *, amr: list[str], lifetime: timedelta,
                         ip: str | None = None, user_agent: str | None = None) -> LoginSession:
    """A new login session (flushed). The ``acr`` is the person's assurance level at login time."""
    now = utcnow()
    row = LoginSession(id=secrets.token_urlsafe(32), person_id=person.id, auth_time=now, last_seen_at=now,
                       expires_at=now + lifetime, acr=person.assurance_level, amr=" ".join(amr),
                       ip=(ip or "")[:64] or None, user_agent=(user_agent or "")[:255] or None)
    session.add(row)
    session.flush()
    return row


def active_login_session(session: Session, session_id: str | None) -> LoginSession | None:
    """The session if it exists, is unrevoked and unexpired."""
    if not session_id or not isinstance(session_id, str):
        return None
    row = session.get(LoginSession, session_id)
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row


def touch_login_session(row: LoginSession) -> bool:
    """Refresh ``last_seen_at`` when it is older than the touch interval; whether it changed."""
    now = utcnow()
    if now - row.last_seen_at <= _TOUCH_INTERVAL:
        return False
    row.last_seen_at = now
    return True


def end_login_session(session: Session, row: LoginSession) -> None:
    """Revoke one session row (if not yet), its refresh tokens, and announce it; flushes."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        note_revoked_session(session, row.id, row.revoked_at)
    revoke_families(session, RefreshToken.session_id == row.id, reason="login_session_revoked")
    session.flush()


def list_login_sessions(session: Session, person: Person) -> list[LoginSession]:
    now = utcnow()
    return list(session.scalars(select(LoginSession)
                                .where(LoginSession.person_id == person.id, LoginSession.revoked_at.is_(None),
                                       LoginSession.expires_at > now)
                                .order_by(LoginSession.auth_time.desc())))


def revoke_login_session(session: Session, person: Person, session_id: str) -> None:
    """Revoke one of the person's sessions (flushed).

    :raise LoginSessionNotFound: not one of the person's active sessions.
    """
    row = session.get(LoginSession, session_id)
    if row is None or row.person_id != person.id or row.revoked_at is not None:
        raise LoginSessionNotFound()
    end_login_session(session, row)


def revoke_all_login_sessions(session: Session, person: Person, *, keep: str | None = None) -> int:
    """Revoke every active session of the person except ``keep`` (flushed); returns how many."""
    query = select(LoginSession).where(LoginSession.person_id == person.id, LoginSession.revoked_at.is_(None))
    if keep:
        query = query.where(LoginSession.id != keep)
    rows = list(session.scalars(query))
    for row in rows:
        end_login_session(session, row)
    return len(rows)
