"""Federation with the provincial node (身份认证服务互联互通): this node as an OIDC client.
Flask-free; the browser side is :mod:`identity.federation.pages`.

"Log in with the provincial account" sends the browser to the upstream OpenID provider
(authorization code + PKCE S256, ``state`` and ``nonce``); the callback exchanges the code,
validates the upstream ID token (signature from the upstream's JWKS found through its
discovery document, ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``), links the upstream
account to a local person by the verified ID number (blind index) or creates one at the
upstream's assurance level, starts a local login and resumes the downstream app's flow.

The upstream must release the ID number: the federation client asks for ``idcard:full``,
whose claim is ``id_number``.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import structlog
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Problem
from common.http import ServiceClient
from identity.oauth import tokens
from identity.oauth.kernel import digest
from identity.oauth.models import FederatedIdentity, FederationPending

logger = structlog.get_logger("xsn.identity.federation.upstream")
PENDING_SECONDS = 600
DISCOVERY_TTL = 300.0


class FederationError(Problem):
    status, code, title = 502, "federation_failed", "Login through the provincial node failed"


class UpstreamProvider:
    """The upstream's discovery document and JWKS, cached per process."""

    def __init__(self, issuer_url: str, timeout: float) -> None:
        self.issuer = issuer_url.rstrip("/")
        self.timeout = timeout
        # Endpoints come from the discovery document as absolute URLs (they may be on other
        # hosts), so the client has no base URL of its own. GETs are retried, the code
        # exchange (a POST) is not.
        self.http = ServiceClient("", timeout=timeout)
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise FederationError(f"the upstream is unreachable: {url}",
                                  code="federation_upstream_unavailable") from exc

    def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            if refresh or self._metadata is None or time.monotonic() - self._fetched > DISCOVERY_TTL:
                metadata = self._get(f"{self.issuer}/.well-known/openid-configuration")
                if metadata.get("issuer", "").rstrip("/") != self.issuer:
                    raise FederationError("the upstream discovery names another issuer",
                                          code="federation_issuer_mismatch")
                self._metadata = metadata
                self._keys = KeySet.import_key_set(self._get(metadata["jwks_uri"]))
                self._fetched = time.monotonic()
            return self._metadata

    def key(self, kid: str):
        self.metadata()
        for attempt in (0, 1):
            for key in self._keys.keys if self._keys else []:
                if key.kid == kid:
                    return key
            if attempt == 0:
                self.metadata(refresh=True)  # rotated upstream key: refetch once
        return None


def validate_id_token(upstream: UpstreamProvider, id_token: str, *, client_id: str, nonce: str,
                      leeway: int = 60) -> dict[str, Any]:
    """:raise FederationError: bad signature, issuer, audience, time or nonce."""
    try:
        header = jws.extract_compact(id_token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as exc:
        raise FederationError("the upstream ID token is malformed", code="federation_bad_id_token") from exc
    alg = header.get("alg")
    if alg not in ("ES256", "RS256"):
        raise FederationError(f"upstream ID token algorithm {alg!r} refused", code="federation_bad_id_token")
    key = upstream.key(str(header.get("kid")))
    if key is None:
        raise FederationError("the upstream ID token was signed by an unknown key", code="federation_bad_id_token")
    try:
        claims = jwt.decode(id_token, key, algorithms=[alg]).claims
    except (JoseError, ValueError) as exc:
        raise FederationError("the upstream ID token signature does not verify",
                              code="federation_bad_id_token") from exc
    now = time.time()
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    problems = []
    if str(claims.get("iss", "")).rstrip("/") != upstream.issuer:
        problems.append("iss")
    if client_id not in audiences:
        problems.append("aud")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now - leeway:
        problems.append("exp")
    if not isinstance(claims.get("iat"), int) or claims["iat"] > now + leeway:
        problems.append("iat")
    if not nonce or not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        problems.append("nonce")
    if problems:
        raise FederationError(f"the upstream ID token failed checks: {', '.join(problems)}",
                              code="federation_bad_id_token")
    return claims


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




@dataclass(frozen=True)
class Settings:
    """The federation client's registration at the upstream."""

    client_id: str
    client_secret: str
    scope: str
    redirect_uri: str  # our callback, under identity's configured public URL


def begin_login(session: Session, upstream: UpstreamProvider, settings: Settings, next_url: str) -> tuple[str, str]:
    """Record a pending login (PKCE verifier and nonce stay server-side; flushed) and return
    ``(state, the upstream authorization URL)``."""
    metadata = upstream.metadata()
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    now = utcnow()
    session.execute(delete(FederationPending).where(FederationPending.expires_at <= now))
    session.add(FederationPending(state_hash=digest(state), nonce=nonce, code_verifier=verifier, next_url=next_url,
                                  created_at=now, expires_at=now + timedelta(seconds=PENDING_SECONDS)))
    session.flush()
    params = {"response_type": "code", "client_id": settings.client_id, "redirect_uri": settings.redirect_uri,
              "scope": settings.scope, "state": state, "nonce": nonce,
              "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    return state, f"{metadata['authorization_endpoint']}?{urlencode(params)}"


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


def exchange_code(upstream: UpstreamProvider, settings: Settings, pending: FederationPending,
                  code: str) -> dict[str, Any]:
    """Exchange the code at the upstream and return the validated ID token's claims.

    :raise FederationError: unreachable (``federation_upstream_unavailable``), refused
        (``federation_code_refused``), or a bad ID token (``federation_bad_id_token``).
    """
    metadata = upstream.metadata()
    try:
        response = upstream.http.post(metadata["token_endpoint"], auth=(settings.client_id, settings.client_secret),
                                      data={"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": settings.redirect_uri,
                                            "code_verifier": pending.code_verifier})
    except requests.RequestException as exc:
        raise FederationError("the provincial node is unreachable", code="federation_upstream_unavailable") from exc
    try:
        body = response.json()
    except ValueError:  # not JSON (an error page from a proxy, say): as much a refusal as a 4xx
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        logger.warning("federation_token_failed", status=response.status_code, body=response.text[:200])
        raise FederationError("the provincial node refused the code", code="federation_code_refused")
    return validate_id_token(upstream, body["id_token"], client_id=settings.client_id, nonce=pending.nonce)
