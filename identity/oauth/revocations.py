"""Revoked access tokens and login sessions, and the feed that tells the gateway about them.

Access tokens are self-contained, so revoking one records its ``jti`` until it would have
expired anyway; revoking a login session revokes every access token carrying its ``sid``.
Identity's own endpoints check both tables (:func:`is_revoked`); every other service learns
of them through the gateway, which polls :func:`feed` (``GET /oauth/revocations``) and, in
production, also listens on the Redis channel :data:`CHANNEL`.

Flask-free. Items are published only after the transaction that recorded them commits
(:func:`install_publisher`): a rolled-back revocation is never announced.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from common.db import utcnow
from identity.models import LoginSession
from identity.oauth.models import RevokedAccessToken

logger = structlog.get_logger("xsn.identity.oauth.revocations")

CHANNEL = "xsn:revocations"
# A session's tokens live at most as long as the longest access token (clients: <= 24 h).
SESSION_RELEVANCE = timedelta(days=1)
# Rows commit a little after their revoked_at was taken: re-send that much before the cursor,
# so a slow commit is never skipped (consumers treat the feed as a set).
CURSOR_OVERLAP = timedelta(seconds=5)
FEED_LIMIT = 5000
_PENDING = "xsn_revocations_pending"


def _note(session: Session, item: dict[str, Any]) -> None:
    session.info.setdefault(_PENDING, []).append(item)


def revoke_access_jti(session: Session, jti: str, expires_at: datetime) -> None:
    """Record a revoked access token (idempotent); flushes, the caller commits."""
    if session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=expires_at, revoked_at=utcnow()))
        session.flush()
        _note(session, {"kind": "token", "jti": jti, "exp": int(expires_at.timestamp())})


def note_revoked_session(session: Session, session_id: str, revoked_at: datetime) -> None:
    """Announce a revoked login session once the caller commits."""
    _note(session, {"kind": "session", "sid": session_id, "revoked_at": int(revoked_at.timestamp())})


def is_revoked(session: Session, claims: dict[str, Any]) -> bool:
    """Whether an access token (its verified claims) was revoked, itself or through its session."""
    if session.get(RevokedAccessToken, str(claims.get("jti"))) is not None:
        return True
    sid = claims.get("sid")
    if isinstance(sid, str):
        row = session.get(LoginSession, sid)
        return row is not None and row.revoked_at is not None
    return False


# -- the feed ----------------------------------------------------------------------------------
def _encode_cursor(when: datetime) -> str:
    micros = int(when.timestamp() * 1_000_000)
    return base64.urlsafe_b64encode(f"v1:{micros}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> datetime | None:
    """``None`` for an empty or unreadable cursor: the consumer then gets everything (safe)."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, micros = text.partition(":")
        if version != "v1" or not micros.isdigit():
            return None
        return datetime.fromtimestamp(int(micros) / 1_000_000, tz=timezone.utc)
    except (ValueError, UnicodeError):
        return None


def feed(session: Session, after: str | None, *, now: datetime | None = None) -> dict[str, Any]:
    """Revoked tokens and sessions recorded after the cursor ``after`` (all still relevant ones
    for an empty cursor), and the cursor to ask with next time.

    Items may repeat across calls (the overlap that covers slow commits); none is missed.
    """
    now = now or utcnow()
    since = _decode_cursor(after)
    floor = since - CURSOR_OVERLAP if since is not None else None
    token_query = select(RevokedAccessToken).where(RevokedAccessToken.expires_at > now)
    session_query = select(LoginSession).where(LoginSession.revoked_at.is_not(None),
                                               LoginSession.revoked_at > now - SESSION_RELEVANCE)
    if floor is not None:
        token_query = token_query.where(RevokedAccessToken.revoked_at > floor)
        session_query = session_query.where(LoginSession.revoked_at > floor)
    tokens = list(session.scalars(token_query.order_by(RevokedAccessToken.revoked_at).limit(FEED_LIMIT)))
    sessions = list(session.scalars(session_query.order_by(LoginSession.revoked_at).limit(FEED_LIMIT)))
    latest = max([since or datetime.fromtimestamp(0, tz=timezone.utc),
                  *(t.revoked_at for t in tokens), *(s.revoked_at for s in sessions)])
    return {"cursor": _encode_cursor(latest),
            "tokens": [{"jti": t.jti, "exp": int(t.expires_at.timestamp())} for t in tokens],
            "sessions": [{"sid": s.id, "revoked_at": int(s.revoked_at.timestamp())} for s in sessions]}


# -- publishing --------------------------------------------------------------------------------
def redis_publisher(url: str) -> Callable[[list[dict[str, Any]]], None]:
    """Publish items on :data:`CHANNEL`. Fail open: the gateway's poll of the feed still
    delivers an item Redis lost, within its poll interval, so a Redis error only logs."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def publish(items: list[dict[str, Any]]) -> None:
        try:
            for item in items:
                client.publish(CHANNEL, json.dumps(item, separators=(",", ":")))
        except redis.RedisError as exc:
            logger.warning("revocation_publish_failed", error_type=type(exc).__name__, items=len(items))

    return publish


def install_publisher(factory: sessionmaker, publish: Callable[[list[dict[str, Any]]], None]) -> None:
    """Publish what a session noted, after (and only if) it commits."""

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        items = session.info.pop(_PENDING, None)
        if items:
            publish(items)

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)
