"""Federation with the provincial node (身份认证服务互联互通): this node as an OIDC client.
Flask-free; the browser side is :mod:`identity.federation.pages`.

"Log in with the provincial account" sends the browser to the upstream OpenID provider
(authorization code + PKCE S256, ``state`` and ``nonce``); the callback exchanges the code and
validates the upstream ID token with the one relying party, :mod:`common.oidc_client` (every
check of OIDC Core §3.1.3.7, keys from the upstream's JWKS through its discovery), links the upstream
account to a local person by the verified ID number (blind index) or creates one at the
upstream's assurance level, starts a local login and resumes the downstream app's flow.

The upstream must release the ID number: the federation client asks for ``idcard:full``,
whose claim is ``id_number``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Problem
from common.oidc_client import (
    Client,
    InvalidIDToken,
    IssuerMismatch,
    OpenIDProvider,
    ProviderUnavailable,
    TokenRequestRefused,
)
from identity.oauth import tokens
from identity.oauth.kernel import digest
from identity.oauth.models import FederatedIdentity, FederationPending

logger = structlog.get_logger("xsn.identity.federation.upstream")
PENDING_SECONDS = 600


class FederationError(Problem):
    status, code, title = 502, "federation_failed", "Login through the provincial node failed"


def link_person(session, upstream_issuer: str, claims: dict[str, Any]):
    """The local person for a validated upstream identity: by link, by ID number, or new.

    A new person gets the upstream's assurance level (never above it). Commits.

    :raise FederationError: the upstream did not release the ID number.
    """
    from identity.accounts import create_person, find_person_by_id_number, get_person

    upstream_level = tokens.acr_level(claims.get("acr")) or 1
    link = session.scalar(select(FederatedIdentity).where(FederatedIdentity.issuer == upstream_issuer,
                                                          FederatedIdentity.subject == str(claims["sub"])))
    person = get_person(session, link.person_id) if link else None
    if person is None:
        id_number = claims.get("id_number")
        if not id_number or "*" in str(id_number):
            raise FederationError("the upstream did not release the ID number (scope idcard:full)",
                                  code="federation_no_id_number")
        person = find_person_by_id_number(session, str(id_number))
        if person is None:
            person = create_person(session, name=str(claims.get("name") or "—"), id_number=str(id_number),
                                   assurance_level=upstream_level)
            logger.info("federation_person_created", level=upstream_level)
        link = FederatedIdentity(issuer=upstream_issuer, subject=str(claims["sub"]), person_id=person.id,
                                 upstream_acr=upstream_level, created_at=utcnow(), last_login_at=utcnow())
        session.add(link)
    link.upstream_acr = upstream_level
    link.last_login_at = utcnow()
    session.flush()
    return person




def begin_login(session: Session, upstream: OpenIDProvider, client: Client, next_url: str) -> tuple[str, str]:
    """Record a pending login (PKCE verifier and nonce stay server-side; flushed) and return
    ``(state, the upstream authorization URL)``.

    :raise FederationError: the upstream cannot be reached or names another issuer.
    """
    try:
        started = upstream.authorization_request(client)
    except (ProviderUnavailable, IssuerMismatch) as exc:
        raise _federation_error(exc) from exc
    now = utcnow()
    session.execute(delete(FederationPending).where(FederationPending.expires_at <= now))
    session.add(FederationPending(state_hash=digest(started.state), nonce=started.nonce,
                                  code_verifier=started.code_verifier, next_url=next_url, created_at=now,
                                  expires_at=now + timedelta(seconds=PENDING_SECONDS)))
    session.flush()
    return started.state, started.url


def claim_pending(session: Session, state: str) -> FederationPending | None:
    """Take the pending login for ``state`` out of the table (single use); ``None`` if unknown,
    already used or expired. Commits: the claim holds even if what follows fails."""
    row = session.get(FederationPending, digest(state))
    if row is None:
        return None
    claimed = session.execute(delete(FederationPending)
                              .where(FederationPending.state_hash == row.state_hash)).rowcount
    session.commit()
    if claimed != 1 or row.expires_at <= utcnow():  # a concurrent callback won, or too late
        return None
    return row


def exchange_code(upstream: OpenIDProvider, client: Client, pending: FederationPending,
                  code: str) -> dict[str, Any]:
    """Exchange the code at the upstream and return the validated ID token's claims.

    :raise FederationError: unreachable (``federation_upstream_unavailable``), refused
        (``federation_code_refused``), or a bad ID token (``federation_bad_id_token``).
    """
    try:
        answer = upstream.exchange_code(client, code, pending.code_verifier)
        return upstream.verify_id_token(answer["id_token"], client_id=client.client_id, nonce=pending.nonce,
                                        access_token=answer["access_token"])
    except (ProviderUnavailable, IssuerMismatch, TokenRequestRefused, InvalidIDToken) as exc:
        raise _federation_error(exc) from exc


def _federation_error(exc: Exception) -> FederationError:
    """The relying party's refusal, in federation's codes (the refusal page shows the detail)."""
    if isinstance(exc, InvalidIDToken):
        return FederationError(f"the upstream ID token failed checks: {', '.join(exc.failed)}",
                               code="federation_bad_id_token")
    if isinstance(exc, TokenRequestRefused):
        logger.warning("federation_token_failed", detail=exc.detail)
        return FederationError("the provincial node refused the code", code="federation_code_refused")
    if isinstance(exc, IssuerMismatch):
        return FederationError("the upstream discovery names another issuer", code="federation_issuer_mismatch")
    return FederationError("the provincial node is unreachable", code="federation_upstream_unavailable")
