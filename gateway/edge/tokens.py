"""Access tokens at the gateway: the shared verifier, identity's JWKS fetched without blocking,
verified tokens cached, revoked tokens and sessions refused.

The claim checks (``alg`` allow-list, ``typ``, ``iss``, ``aud``, ``exp``, ``nbf``) are the
shared verifier's (``common.crypto.access_tokens.TokenVerifier``); this module only feeds it keys. The
verifier's own key cache fetches synchronously, which would stall the event loop, so the
gateway fetches the JWKS here asynchronously (on start, every ``ttl`` seconds, and on an
unknown ``kid`` at most every ``min_refresh`` seconds, so a flood of made-up ``kid`` values
cannot become a flood of fetches) and hands each document to a fresh ``JWKSCache``. Verified
tokens are cached by the shared verifier (one verifier per audience), as in every service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from common.crypto.access_tokens import InvalidToken, JWKSCache, TokenVerifier, peek_header, scopes_of
from common.errors import Problem
from gateway.edge.problems import MultipleAuthorization, ScopeProblem, TokenProblem

log = structlog.get_logger("xsn.gateway.tokens")
CACHE_SIZE = 10_000  # verified tokens kept per audience (the shared verifier's cache)
LEEWAY = 30  # seconds of clock skew allowed on exp/nbf, as every service's verifier


class RevocationList:
    """Revoked token ids (until they expire) and sessions (for ``session_ttl`` seconds, longer
    than any access token issued in them lives)."""

    def __init__(self, *, session_ttl: float = 86_400.0, clock: Callable[[], float] = time.time) -> None:
        self.tokens: dict[str, float] = {}
        self.sessions: dict[str, float] = {}
        self.session_ttl = session_ttl
        self.clock = clock
        self.updated_at: float | None = None  # last successful sync with identity (time.time)

    def add(self, item: dict[str, Any], kind: str | None = None) -> None:
        kind = kind or item.get("kind") or ("token" if "jti" in item else "session")
        if kind == "token" and isinstance(item.get("jti"), str):
            exp = item.get("exp")
            self.tokens[item["jti"]] = float(exp) if isinstance(exp, int | float) else self.clock() + self.session_ttl
        elif kind == "session" and isinstance(item.get("sid"), str):
            self.sessions[item["sid"]] = self.clock()

    def is_revoked(self, claims: dict[str, Any]) -> bool:
        sid = claims.get("sid")
        return claims.get("jti") in self.tokens or (isinstance(sid, str) and sid in self.sessions)

    def prune(self) -> None:
        now = self.clock()
        self.tokens = {jti: exp for jti, exp in self.tokens.items() if exp > now - 60}
        self.sessions = {sid: at for sid, at in self.sessions.items() if at > now - self.session_ttl}


class AccessTokens:
    def __init__(self, *, issuer: str, fetch_jwks: Callable[[], Awaitable[dict]], revocations: RevocationList,
                 ttl: float = 300.0, min_refresh: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.fetch_jwks = fetch_jwks
        self.revocations = revocations
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.clock = clock
        self.wall_clock = wall_clock  # the verifier's: exp, nbf, iat
        self.kids: frozenset[str] = frozenset()
        self._document: dict | None = None
        self._jwks: JWKSCache | None = None
        self._verifiers: dict[str, TokenVerifier] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self._document is not None

    async def refresh(self, *, bounded: bool = True) -> None:
        """Fetch the JWKS unless (``bounded``) a fetch was tried within ``min_refresh`` seconds.
        A failed fetch keeps the keys we have; with none, every token is refused (fail closed)."""
        async with self._lock:
            now = self.clock()
            if bounded and self._attempted_at is not None and now - self._attempted_at < self.min_refresh:
                return
            self._attempted_at = now
            try:
                document = await self.fetch_jwks()
                cache = JWKSCache(lambda: document, ttl=float("inf"), min_refresh=float("inf"))
                cache.get("")  # imports the keys now: a malformed document is a failed fetch
                kids = frozenset(k.get("kid") for k in document.get("keys", []) if isinstance(k, dict) and k.get("kid"))
            except Exception as exc:  # network, JSON, key errors alike: keep the old keys
                log.warning("jwks_fetch_failed", error_type=type(exc).__name__)
                return
            self._document, self.kids, self._fetched_at = document, kids, now
            self._jwks = cache
            self._verifiers = {}  # and with them their verified-token caches

    def _verifier(self, audience: str) -> TokenVerifier:
        verifier = self._verifiers.get(audience)
        if verifier is None:
            verifier = TokenVerifier(issuer=self.issuer, audience=audience, jwks=self._jwks, leeway=LEEWAY,
                                     clock=self.wall_clock, cache_size=CACHE_SIZE)
            self._verifiers[audience] = verifier
        return verifier

    async def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked token meant for ``audience``.

        The shared verifier keeps the verified-token cache (a hit skips only the signature; every
        claim, expiry included, is checked on each call).

        :raise TokenProblem: missing keys, bad token (the verifier's reason as the code), revoked.
        """
        if self._fetched_at is None or self.clock() - self._fetched_at > self.ttl:
            await self.refresh()
        if self._document is None:
            raise TokenProblem("the token signing keys cannot be fetched", code="token_keys_unavailable")
        try:
            claims = self._verifier(audience).verify(token)
        except InvalidToken as exc:
            if not self._kid_unknown(token):
                raise _token_problem(exc) from exc
            await self.refresh()  # an unknown kid may be a rotated key: bounded by min_refresh
            claims = self._verify_claims(token, audience)
        except Problem as exc:
            raise _token_problem(exc) from exc
        if self.revocations.is_revoked(claims):
            raise TokenProblem("the token has been revoked", code="token_revoked")
        return claims

    def _verify_claims(self, token: str, audience: str) -> dict[str, Any]:
        """The shared verifier's verdict, its errors as the gateway's one ``TokenProblem``.

        :raise TokenProblem: see ``_token_problem``.
        """
        try:
            return self._verifier(audience).verify(token)
        except Problem as exc:  # InvalidToken included
            raise _token_problem(exc) from exc

    def _kid_unknown(self, token: str) -> bool:
        """A ``kid`` not among the keys fetched: perhaps a key rotated in since the last fetch."""
        kid = _peek_kid(token)
        return kid is not None and kid not in self.kids


def _token_problem(exc: Problem) -> TokenProblem:
    """The shared verifier's errors as the gateway's: a bad token (``InvalidToken``) keeps the
    verifier's reason as its code; anything else it raised (its own key fetch failing, say) is
    ``invalid_token``."""
    if isinstance(exc, InvalidToken):
        return TokenProblem(exc.detail, code=exc.code)
    return TokenProblem(exc.detail, code="invalid_token")


def _peek_kid(token: str) -> str | None:
    try:
        kid = peek_header(token).get("kid")
    except InvalidToken:
        return None
    return kid if isinstance(kid, str) else None


def bearer(values: list[str]) -> str:
    """The bearer token of the ``Authorization`` header(s).

    :raise MultipleAuthorization: more than one header (which one would the service read?).
    :raise TokenProblem: none, or not a bearer token (``token_missing``).
    """
    if len(values) > 1:
        raise MultipleAuthorization("send exactly one Authorization header")
    scheme, _, token = (values[0] if values else "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenProblem("a bearer access token is required", code="token_missing")
    return token.strip()


def check_scopes(claims: dict[str, Any], required: tuple[str, ...]) -> None:
    """:raise ScopeProblem: a required scope is missing (403, RFC 6750 ``insufficient_scope``)."""
    missing = set(required) - scopes_of(claims)
    if missing:
        raise ScopeProblem(f"this call needs scope: {' '.join(sorted(required))}", required_scopes=sorted(required))
