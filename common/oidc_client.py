"""This node as an OpenID Connect relying party: the one client used for every OIDC sign-in.

Used by the staff consoles (:mod:`common.web.console_login`, confidential clients of
identity), the demo government app (a public client) and identity's federation with the
provincial node (identity as a client of an upstream provider). Plain Python, no Flask.

The flow: :meth:`OpenIDProvider.authorization_request` draws ``state``, ``nonce`` and a PKCE
verifier (S256) and builds the URL to send the browser to; the caller keeps the three
server-side. On the callback :meth:`OpenIDProvider.exchange_code` trades the code for tokens
server-to-server and :meth:`OpenIDProvider.verify_id_token` checks the ID token (OIDC Core
§3.1.3.7): compact JWS decoded strictly, an allowed asymmetric algorithm whose key family
matches, a key from the provider's JWKS (found through discovery), the signature, ``iss``,
``sub``, ``aud``, ``azp``, ``exp``, ``iat`` (neither in the future nor too old), ``nbf``,
``nonce`` and ``at_hash``. Every failure is an :class:`OIDCError` (a :class:`~common.errors.Problem`).

``internal_base``: a provider that is also reachable on an internal URL (identity behind the
gateway) is called there server-to-server, while the browser is sent to the public endpoints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from common.errors import Problem
from common.http import ServiceClient

log = structlog.get_logger("xsn.oidc_client")

ALGORITHMS = ("ES256", "RS256")  # asymmetric only: never "none", never HMAC with a public key
MAX_TOKEN_LENGTH = 16384
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


# -- errors -------------------------------------------------------------------------------------
class OIDCError(Problem):
    status, code, title = 502, "oidc_failed", "Sign-in with the identity provider failed"


class ProviderUnavailable(OIDCError):
    """Discovery, JWKS or the token endpoint could not be reached or answered garbage."""

    status, code, title = 503, "oidc_provider_unavailable", "The identity provider cannot be reached"


class IssuerMismatch(OIDCError):
    """The discovery document names another issuer than the one configured."""

    status, code, title = 503, "oidc_issuer_mismatch", "The identity provider names another issuer"


class TokenRequestRefused(OIDCError):
    """The token endpoint refused the code (or refresh token), or answered without the tokens."""

    code, title = "oidc_token_refused", "The identity provider refused the token request"


class InvalidIDToken(OIDCError):
    """The ID token failed a check; ``failed`` names the checks (e.g. ``["aud", "nonce"]``)."""

    code, title = "oidc_bad_id_token", "The ID token did not verify"

    def __init__(self, detail: str, failed: list[str]) -> None:
        super().__init__(detail, failed=failed)
        self.failed = failed


# -- values -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Client:
    """How this party is registered at the provider. No ``client_secret``: a public client."""

    client_id: str
    redirect_uri: str
    scope: str = "openid"
    client_secret: str | None = None

    def auth(self) -> dict[str, Any]:
        """``requests`` arguments authenticating the client at the token endpoint
        (``client_secret_basic``, or ``client_id`` in the body for a public client)."""
        if self.client_secret:
            return {"auth": (self.client_id, self.client_secret), "data": {}}
        return {"data": {"client_id": self.client_id}}


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and the three secrets to keep server-side until the callback."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def s256_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def token_hash(value: str, alg: str) -> str:
    """``at_hash`` of an access token (OIDC Core §3.1.3.6): left half of its SHA-256, base64url."""
    if alg not in ALGORITHMS:  # both SHA-256 based; another algorithm would need another hash
        raise ValueError(f"no hash for {alg}")
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _b64url_json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- the provider ---------------------------------------------------------------------------------
class OpenIDProvider:
    """One OpenID provider as this party sees it: discovery, keys, tokens, checks.

    Safe to share between threads; a process keeps one per provider.
    """

    def __init__(self, issuer: str, *, internal_base: str | None = None, http: ServiceClient | None = None,
                 timeout: float = 5.0, algorithms: tuple[str, ...] = ALGORITHMS, leeway: int = 60,
                 iat_max_age: int = 600, discovery_ttl: float = 300.0, jwks_min_refresh: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer.rstrip("/")
        self.internal_base = internal_base.rstrip("/") if internal_base else None
        self.http = http or ServiceClient(self.internal_base or self.issuer, timeout=timeout)
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown:
            raise ValueError(f"algorithms not supported for ID tokens: {sorted(unknown)}")
        self.algorithms = tuple(algorithms)
        self.leeway, self.iat_max_age = leeway, iat_max_age
        self.discovery_ttl, self.jwks_min_refresh = discovery_ttl, jwks_min_refresh
        self.clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, Any] = {}
        self._keys_at: float | None = None
        self._lock = threading.Lock()

    # discovery and keys
    def server_url(self, url: str) -> str:
        """Where to call one of the provider's endpoints from this server (internal if known)."""
        if self.internal_base and url.startswith(self.issuer + "/"):
            return self.internal_base + url[len(self.issuer):]
        return url

    def _get_json(self, url: str) -> Any:
        try:
            response = self.http.get(self.server_url(url))
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("oidc_provider_unreachable", url=url, error_type=type(exc).__name__)
            raise ProviderUnavailable(f"the identity provider is unreachable: {url}") from exc

    def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        """The discovery document (cached ``discovery_ttl`` seconds).

        :raise ProviderUnavailable: not reachable or not a JSON object.
        :raise IssuerMismatch: it names another issuer.
        """
        with self._lock:
            fresh = self._metadata is not None and time.monotonic() - self._metadata_at < self.discovery_ttl
            if refresh or not fresh:
                document = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
                if not isinstance(document, dict):
                    raise ProviderUnavailable("the discovery document is not a JSON object")
                if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                    log.error("oidc_issuer_mismatch", issuer=document.get("issuer"), expected=self.issuer)
                    raise IssuerMismatch(f"the discovery document names issuer {document.get('issuer')!r}")
                self._metadata, self._metadata_at = document, time.monotonic()
            return self._metadata

    def endpoint(self, name: str) -> str:
        """``name`` (e.g. ``token_endpoint``) from discovery. :raise ProviderUnavailable: not named."""
        url = self.metadata().get(name)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ProviderUnavailable(f"the provider names no {name}")
        return url

    def key(self, kid: str):
        """The provider's public key ``kid``, or ``None``. An unknown kid refetches the JWKS
        (a rotated key), at most every ``jwks_min_refresh`` seconds so that tokens with random
        kids cannot turn into a flood of fetches."""
        jwks_uri = self.endpoint("jwks_uri")
        with self._lock:
            now = time.monotonic()
            stale = self._keys_at is None or now - self._keys_at > self.discovery_ttl
            unknown = kid not in self._keys and (self._keys_at is None or now - self._keys_at > self.jwks_min_refresh)
            if stale or unknown:
                try:
                    keyset = KeySet.import_key_set(self._get_json(jwks_uri))
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise ProviderUnavailable("the provider's JWKS cannot be read") from exc
                self._keys = {key.kid: key for key in keyset.keys if key.kid}
                self._keys_at = now
            return self._keys.get(kid)

    # the flow
    def authorization_request(self, client: Client, **extra: str) -> AuthorizationRequest:
        """A fresh ``state``, ``nonce`` and PKCE verifier, and the authorization URL carrying them
        (``extra``: further parameters such as ``ui_locales`` or ``prompt``)."""
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        query = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
                 "scope": client.scope, "state": state, "nonce": nonce,
                 "code_challenge": s256_challenge(verifier), "code_challenge_method": "S256", **extra}
        return AuthorizationRequest(f"{self.endpoint('authorization_endpoint')}?{urlencode(query)}",
                                    state, nonce, verifier)

    def _token_request(self, client: Client, form: dict[str, str], *, need_id_token: bool) -> dict[str, Any]:
        arguments = client.auth()
        arguments["data"].update(form)
        try:
            response = self.http.post(self.server_url(self.endpoint("token_endpoint")), **arguments)
        except requests.RequestException as exc:
            log.warning("oidc_token_request_failed", error_type=type(exc).__name__)
            raise ProviderUnavailable("the token endpoint cannot be reached") from exc
        try:
            body = response.json()
        except ValueError:  # an error page from a proxy, say: as much a refusal as a 4xx
            body = None
        wanted = ("access_token", "id_token") if need_id_token else ("access_token",)
        if response.status_code != 200 or not isinstance(body, dict) \
                or not all(isinstance(body.get(name), str) and body[name] for name in wanted):
            error = body.get("error") if isinstance(body, dict) else None
            log.warning("oidc_token_refused", status=response.status_code, error=error)
            raise TokenRequestRefused(f"the token endpoint answered {response.status_code}"
                                      + (f" ({error})" if isinstance(error, str) else ""),
                                      error=error if isinstance(error, str) else None)
        return body

    def exchange_code(self, client: Client, code: str, code_verifier: str) -> dict[str, Any]:
        """The token response for an authorization code (it has an ``access_token`` and an
        ``id_token``, not yet verified: call :meth:`verify_id_token`).

        :raise ProviderUnavailable: unreachable. :raise TokenRequestRefused: refused or incomplete.
        """
        return self._token_request(client, {"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": client.redirect_uri,
                                            "code_verifier": code_verifier}, need_id_token=True)

    def refresh(self, client: Client, refresh_token: str) -> dict[str, Any]:
        """A new token response for a refresh token. :raise OIDCError: as :meth:`exchange_code`."""
        return self._token_request(client, {"grant_type": "refresh_token", "refresh_token": refresh_token},
                                   need_id_token=False)

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """:raise ProviderUnavailable: unreachable, refused or not a JSON object."""
        document = None
        try:
            response = self.http.get(self.server_url(self.endpoint("userinfo_endpoint")),
                                     headers={"Authorization": f"Bearer {access_token}"})
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable("userinfo could not be read") from exc
        if not isinstance(document, dict):
            raise ProviderUnavailable("userinfo is not a JSON object")
        return document

    def end_session_url(self, id_token_hint: str, post_logout_redirect_uri: str, **extra: str) -> str:
        """RP-initiated logout: where to send the browser to end the provider's login too."""
        query = {"id_token_hint": id_token_hint, "post_logout_redirect_uri": post_logout_redirect_uri, **extra}
        return f"{self.endpoint('end_session_endpoint')}?{urlencode(query)}"

    # the ID token
    def verify_id_token(self, id_token: str, *, client_id: str, nonce: str,
                        access_token: str | None = None) -> dict[str, Any]:
        """The claims of ``id_token`` after every check of OIDC Core §3.1.3.7 (see the module).

        ``access_token``: the one issued with it, whose ``at_hash`` (if the token has one) must match.

        :raise InvalidIDToken: any check fails (``failed`` names which).
        :raise ProviderUnavailable: the keys cannot be fetched.
        """
        header = self._header(id_token)
        alg = header["alg"]
        key = self.key(header["kid"])
        if key is None:
            raise InvalidIDToken("the ID token was signed by an unknown key", ["kid"])
        if not _key_fits(key, alg):
            raise InvalidIDToken(f"the key {header['kid']!r} is not a key for {alg}", ["alg"])
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidIDToken("the ID token signature does not verify", ["signature"]) from exc
        if not isinstance(claims, dict):
            raise InvalidIDToken("the ID token payload is not a JSON object", ["payload"])
        failed = self._failed_claims(claims, client_id=client_id, nonce=nonce, alg=alg, access_token=access_token)
        if failed:
            log.warning("oidc_id_token_refused", failed=failed, issuer=self.issuer)
            raise InvalidIDToken(f"the ID token failed checks: {', '.join(failed)}", failed)
        return claims

    def _header(self, token: str) -> dict[str, Any]:
        """The unverified header, after a strict look at the compact form (RFC 7515 §7.1): three
        base64url segments, nothing else, so stray characters are refused, not skipped."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidIDToken("the ID token is not a compact JWS", ["format"])
        segments = token.split(".")
        if len(segments) != 3 or not all(_SEGMENT.match(segment) for segment in segments):
            raise InvalidIDToken("the ID token is not a compact JWS", ["format"])
        try:
            header = _b64url_json(segments[0])
            payload = _b64url_json(segments[1])
        except (ValueError, UnicodeError) as exc:
            raise InvalidIDToken("the ID token is not base64url JSON", ["format"]) from exc
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise InvalidIDToken("the ID token header or payload is not a JSON object", ["format"])
        if header.get("alg") not in self.algorithms:
            raise InvalidIDToken(f"ID token algorithm {header.get('alg')!r} refused", ["alg"])
        if "crit" in header:  # no critical extension is understood here (RFC 7515 §4.1.11)
            raise InvalidIDToken("the ID token has critical header parameters", ["crit"])
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise InvalidIDToken("the ID token names no key (kid)", ["kid"])
        return header

    def _failed_claims(self, claims: dict[str, Any], *, client_id: str, nonce: str, alg: str,
                       access_token: str | None) -> list[str]:
        now = self.clock()
        failed = []
        if str(claims.get("iss", "")).rstrip("/") != self.issuer or not isinstance(claims.get("iss"), str):
            failed.append("iss")
        if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
            failed.append("sub")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if client_id not in audiences:
            failed.append("aud")
        # §3.1.3.7 (4)-(5): with several audiences the token must say it was issued to us.
        if ("azp" in claims or len(audiences) > 1) and claims.get("azp") != client_id:
            failed.append("azp")
        if not _is_number(claims.get("exp")) or claims["exp"] <= now - self.leeway:
            failed.append("exp")
        iat = claims.get("iat")
        if not _is_number(iat) or iat > now + self.leeway or iat < now - self.iat_max_age - self.leeway:
            failed.append("iat")
        if "nbf" in claims and (not _is_number(claims["nbf"]) or claims["nbf"] > now + self.leeway):
            failed.append("nbf")
        if not nonce or not isinstance(claims.get("nonce"), str) \
                or not secrets.compare_digest(claims["nonce"].encode(), nonce.encode()):
            failed.append("nonce")
        at_hash = claims.get("at_hash")
        if access_token is not None and "at_hash" in claims and (
                not isinstance(at_hash, str) or not secrets.compare_digest(at_hash, token_hash(access_token, alg))):
            failed.append("at_hash")
        return failed


def _key_fits(key, alg: str) -> bool:
    """The key's family matches the algorithm (no RSA key under ES256 and the like), and the
    JWK's own ``alg``/``use``, when it states them, agree."""
    if key.get("alg") not in (None, alg) or key.get("use") not in (None, "sig"):
        return False
    if alg == "ES256":
        return isinstance(key, ECKey) and key.get("crv") == "P-256"
    if alg == "RS256":
        return isinstance(key, RSAKey) and key.public_key.key_size >= 2048
    return False
