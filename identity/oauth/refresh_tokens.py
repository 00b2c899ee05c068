"""Refresh-token families: rotation on each use, and revocation of a family on reuse.

A refresh token is single use: :func:`rotate` claims it (one conditional UPDATE, so of two
concurrent uses exactly one wins) and the grant issues its successor in the same family. A
token presented again after it was rotated away, or a replayed authorization code, means a
copy leaked: everything issued from it is revoked (RFC 9700 §4.14, §4.5). Flask-free.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db import utcnow
from identity.oauth.issuing import RefreshPlan
from identity.oauth.models import AuthorizationCode, RefreshToken
from identity.oauth.revocations import revoke_access_jti

logger = structlog.get_logger("xsn.identity.oauth.refresh_tokens")


def rotate(session: Session, row: RefreshToken) -> bool:
    """Claim ``row`` for one use (mark it used); ``False`` if it was used or revoked already,
    in which case its family has been revoked (flushed; the caller commits)."""
    claimed = session.execute(update(RefreshToken)
                              .where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None),
                                     RefreshToken.revoked_at.is_(None))
                              .values(used_at=utcnow())).rowcount
    if claimed == 1:
        return True
    session.rollback()
    revoke_family(session, row.family_id, reason="refresh_token_reused")
    return False


def claim_code(session: Session, row: AuthorizationCode) -> bool:
    """Claim an authorization code for its one use; ``False`` (and what its first use issued
    revoked, flushed) when a concurrent request already used it."""
    claimed = session.execute(update(AuthorizationCode)
                              .where(AuthorizationCode.code_hash == row.code_hash,
                                     AuthorizationCode.used_at.is_(None))
                              .values(used_at=utcnow())).rowcount
    if claimed == 1:
        return True
    session.rollback()
    revoke_code_issue(session, session.get(AuthorizationCode, row.code_hash))
    return False


def revoke_family(session: Session, family_id: str, *, reason: str) -> int:
    """Revoke every refresh token of a family and deny its access tokens; flushes."""
    now = utcnow()
    count = 0
    for row in session.scalars(select(RefreshToken).where(RefreshToken.family_id == family_id)):
        if row.revoked_at is None:
            row.revoked_at = now
            count += 1
        revoke_access_jti(session, row.access_jti, row.access_expires_at)
    session.flush()
    logger.warning("refresh_family_revoked", family_id=family_id, reason=reason, tokens=count)
    return count


def revoke_families(session: Session, *where, reason: str) -> None:
    """:func:`revoke_family` for every family with an unrevoked refresh token matching ``where``."""
    families = set(session.scalars(select(RefreshToken.family_id).where(*where, RefreshToken.revoked_at.is_(None))))
    for family_id in families:
        revoke_family(session, family_id, reason=reason)


def revoke_code_issue(session: Session, row: AuthorizationCode) -> None:
    """A replayed code: revoke what its first use issued (OAuth 2.0 §4.1.2, RFC 9700 §4.5)."""
    if row.family_id:
        revoke_family(session, row.family_id, reason="authorization_code_replayed")
    if row.access_jti:
        revoke_access_jti(session, row.access_jti, utcnow() + timedelta(days=1))
    logger.warning("authorization_code_replayed", client_id=row.client_id)


def successor(row: RefreshToken) -> RefreshPlan:
    """The plan of the refresh token that replaces ``row``: same family, scope and end."""
    return RefreshPlan(family_id=row.family_id, scope=row.scope, expires_at=row.expires_at)
