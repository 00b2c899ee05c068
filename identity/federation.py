"""Federation with the provincial node (身份认证服务互联互通): this node as an OIDC client.

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
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import structlog
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, Flask, abort, current_app, redirect, render_template_string, request, session
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select

from common.db import get_session, utcnow
from common.errors import Problem
from identity.oauth import tokens
from identity.oauth.context import issuer
from identity.oauth.kernel import digest
from identity.oauth.models import FederatedIdentity, FederationPending

log = structlog.get_logger("xsn.identity.federation")
bp = Blueprint("federation", __name__, url_prefix="/federation")
PENDING_KEY = "identity_federation"
PENDING_SECONDS = 600
DISCOVERY_TTL = 300.0


class FederationError(Problem):
    status, code, title = 502, "federation_failed", "Login through the provincial node failed"


class UpstreamProvider:
    """The upstream's discovery document and JWKS, cached per process."""

    def __init__(self, issuer_url: str, timeout: float) -> None:
        self.issuer = issuer_url.rstrip("/")
        self.timeout = timeout
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(url, timeout=self.timeout)
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


def provider() -> UpstreamProvider:
    config = current_app.config
    cached = current_app.extensions.get("identity_federation")
    if cached is None or cached.issuer != str(config["FEDERATION_UPSTREAM_ISSUER"]).rstrip("/"):
        cached = UpstreamProvider(str(config["FEDERATION_UPSTREAM_ISSUER"]), float(config["FEDERATION_TIMEOUT"]))
        current_app.extensions["identity_federation"] = cached
    return cached


def callback_url() -> str:
    return f"{issuer()}/federation/callback"


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
            log.info("federation_person_created", level=upstream_level)
        link = FederatedIdentity(issuer=upstream_issuer, subject=str(claims["sub"]), person_id=person.id,
                                 upstream_acr=upstream_level, created_at=utcnow(), last_login_at=utcnow())
        session.add(link)
    link.upstream_acr = upstream_level
    link.last_login_at = utcnow()
    session.commit()
    return person


@bp.get("/start")
def start():
    """Begin a login at the upstream: the verifier and nonce stay in ``federation_pending``;
    the cookie holds only the ``state`` (which the browser sees in the URL anyway), binding the
    callback to the browser that started it."""
    from identity.login import safe_next

    config = current_app.config
    if not config.get("FEDERATION_UPSTREAM_ISSUER") or not config.get("FEDERATION_CLIENT_ID"):
        abort(404)
    metadata = provider().metadata()
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    db = get_session()
    now = utcnow()
    db.execute(delete(FederationPending).where(FederationPending.expires_at <= now))
    db.add(FederationPending(state_hash=digest(state), nonce=nonce, code_verifier=verifier,
                             next_url=safe_next(request.args.get("next")), created_at=now,
                             expires_at=now + timedelta(seconds=PENDING_SECONDS)))
    db.commit()
    session[PENDING_KEY] = state
    params = {"response_type": "code", "client_id": config["FEDERATION_CLIENT_ID"], "redirect_uri": callback_url(),
              "scope": config["FEDERATION_SCOPE"], "state": state, "nonce": nonce,
              "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    return redirect(f"{metadata['authorization_endpoint']}?{urlencode(params)}")


def claim_pending(state: str) -> FederationPending | None:
    """Take the pending login for ``state`` out of the table (single use); ``None`` if unknown,
    already used or expired. Commits."""
    db = get_session()
    row = db.get(FederationPending, digest(state))
    if row is None:
        return None
    claimed = db.execute(delete(FederationPending).where(FederationPending.state_hash == row.state_hash)).rowcount
    db.commit()
    if claimed != 1 or row.expires_at <= utcnow():  # a concurrent callback won, or too late
        return None
    return row


FAILED_PAGE = """{% extends "identity/layout.html" %}{% block content %}
<section class="card narrow"><h1>{{ title }}</h1><p class="alert">{{ detail }}</p>
<a class="button" href="{{ url_for('pages.login') }}">{{ back }}</a></section>{% endblock %}"""


def _failed(detail: str, status: int = 400):
    from common.web.i18n import current_language

    en = current_language() == "en"
    return render_template_string(FAILED_PAGE, title="Provincial login failed" if en else "省级账号登录失败",
                                  detail=detail, back="Back to login" if en else "返回登录"), status


@bp.get("/callback")
def callback():
    from identity.login import start_login

    config = current_app.config
    expected = session.pop(PENDING_KEY, None)
    state = request.args.get("state", "")
    if not isinstance(expected, str) or not expected:
        return _failed("no federation login in progress (or it expired)")
    if not secrets.compare_digest(state, expected):
        return _failed("state mismatch")
    pending = claim_pending(state)
    if pending is None:
        return _failed("no federation login in progress (or it expired)")
    if request.args.get("error"):
        return _failed(f"upstream: {request.args['error']}")
    code = request.args.get("code")
    if not code:
        return _failed("no code")
    upstream = provider()
    metadata = upstream.metadata()
    try:
        response = requests.post(metadata["token_endpoint"], timeout=upstream.timeout,
                                 auth=(config["FEDERATION_CLIENT_ID"], config["FEDERATION_CLIENT_SECRET"] or ""),
                                 data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": callback_url(), "code_verifier": pending.code_verifier})
    except requests.RequestException:
        return _failed("the provincial node is unreachable", 502)
    try:
        body = response.json()
    except ValueError:  # not JSON (an error page from a proxy, say): as much a refusal as a 4xx
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
        log.warning("federation_token_failed", status=response.status_code, body=response.text[:200])
        return _failed("the provincial node refused the code", 502)
    try:
        claims = validate_id_token(upstream, body["id_token"], client_id=config["FEDERATION_CLIENT_ID"],
                                   nonce=pending.nonce)
        person = link_person(get_session(), upstream.issuer, claims)
    except FederationError as exc:
        log.warning("federation_rejected", code=exc.code, detail=exc.detail)
        return _failed(exc.detail, 502)
    start_login(person, ["fed"])
    return redirect(pending.next_url)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
