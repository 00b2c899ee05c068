"""Client registration (government apps and our own services): plain Python, takes a session.

Client secrets are 256-bit random values shown once at registration; only
``HMAC-SM3(K, secret)`` is stored, with ``K = HMAC-SM3(KEK, "identity:client-secret")``.
A keyed hash rather than a password KDF: the secrets are high-entropy, so a slow hash buys
nothing and would cap the token endpoint at a few requests per second (STANDARDS.md §6);
the key means a stolen database alone does not allow offline checks of guessed secrets.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.crypto.gm import hmac_sm3, hmac_sm3_verify
from common.db import utcnow
from common.errors import Conflict, NotFound, ValidationFailed
from identity.oauth.models import CONFIDENTIAL, PUBLIC, OAuthClient, RefreshToken

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
ID_TOKEN_ALGS = ("ES256", "RS256")
SCOPE_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
AUDIENCE_RE = re.compile(r"^xsn:[a-z][a-z0-9_-]{0,31}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


class ClientNotFound(NotFound):
    code, title = "client_not_found", "Client not found"


class InvalidClientMetadata(ValidationFailed):
    code, title = "invalid_client_metadata", "Invalid client metadata"


def secret_hash_key(kek: bytes) -> bytes:
    return hmac_sm3(kek, b"identity:client-secret")


def hash_secret(key: bytes, secret: str) -> str:
    return hmac_sm3(key, secret.encode()).hex()


def check_secret(key: bytes, stored_hash: str | None, secret: str | None) -> bool:
    """Constant-time check of a presented secret against the stored keyed hash."""
    if not stored_hash or not secret:
        return False
    return hmac_sm3_verify(key, secret.encode(), bytes.fromhex(stored_hash))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class ClientSpec:
    """What a registration asks for; :func:`register_client` validates it."""

    name: str
    client_type: str = CONFIDENTIAL
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scopes: list[str] = field(default_factory=lambda: ["openid", "profile"])
    audiences: list[str] = field(default_factory=list)
    access_token_lifetime: int = 600
    refresh_token_lifetime: int = 30 * 24 * 3600
    min_acr: int = 1
    id_token_alg: str = "ES256"  # noqa: S105 - an algorithm name
    skip_consent: bool = False
    client_id: str | None = None
    token_endpoint_auth_method: str | None = None


def _check_redirect_uri(uri: str) -> None:
    """Absolute ``https`` (``http`` only on a loopback host), no fragment, no userinfo.

    RFC 6749 §3.1.2 and RFC 8252 §7.3/§8.3. The URI is later compared as an exact string, so
    anything a browser or a URL parser could read two ways (spaces, control characters, an
    empty ``#``, ``user@host``, an out-of-range port) is refused here rather than normalised.
    """
    def bad(reason: str) -> InvalidClientMetadata:
        return InvalidClientMetadata(f"redirect URI {uri!r} {reason}", errors={"redirect_uris": [uri]})

    if not uri or len(uri) > 2000 or any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        raise bad("must be a non-empty URL without spaces or control characters")
    parts = urlsplit(uri)
    if "#" in uri or not parts.netloc or not parts.hostname or parts.scheme not in ("https", "http"):
        raise bad("must be an absolute http(s) URL without fragment")
    if "@" in parts.netloc:
        raise bad("must not carry user information")
    try:
        parts.port  # noqa: B018 - raises on an out-of-range or non-numeric port
    except ValueError as exc:
        raise bad("has an invalid port") from exc
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise bad("uses plain http, allowed for loopback hosts only")


def validate_spec(spec: ClientSpec) -> None:
    """:raise InvalidClientMetadata: any field is out of range (422)."""
    errors: dict[str, list[str]] = {}
    if not spec.name.strip() or len(spec.name) > 200:
        errors["name"] = ["1..200 characters"]
    if spec.client_type not in (CONFIDENTIAL, PUBLIC):
        errors["client_type"] = ["confidential or public"]
    if spec.client_id is not None and not CLIENT_ID_RE.match(spec.client_id):
        errors["client_id"] = ["3..64 letters, digits, '.', '_' or '-'"]
    bad = [g for g in spec.grant_types if g not in GRANT_TYPES]
    if bad or not spec.grant_types:
        errors["grant_types"] = [f"one or more of {', '.join(GRANT_TYPES)}"]
    if spec.client_type == PUBLIC and "client_credentials" in spec.grant_types:
        errors["grant_types"] = ["a public client cannot use client_credentials"]
    if "authorization_code" in spec.grant_types and not spec.redirect_uris:
        errors["redirect_uris"] = ["authorization_code needs at least one redirect URI"]
    if [s for s in spec.scopes if not SCOPE_RE.match(s)]:
        errors["scopes"] = ["scopes are lower-case tokens such as 'openid' or 'seal:sign'"]
    if [a for a in spec.audiences if not AUDIENCE_RE.match(a)]:
        errors["audiences"] = ["audiences look like 'xsn:<service>'"]
    if not 60 <= spec.access_token_lifetime <= 24 * 3600:
        errors["access_token_lifetime"] = ["60..86400 seconds"]
    if not 300 <= spec.refresh_token_lifetime <= 180 * 24 * 3600:
        errors["refresh_token_lifetime"] = ["300 seconds..180 days"]
    if spec.min_acr not in (1, 2, 3, 4):
        errors["min_acr"] = ["1..4"]
    if spec.id_token_alg not in ID_TOKEN_ALGS:
        errors["id_token_alg"] = list(ID_TOKEN_ALGS)
    if errors:
        raise InvalidClientMetadata("the client registration is invalid", errors=errors)
    for uri in [*spec.redirect_uris, *spec.post_logout_redirect_uris]:
        _check_redirect_uri(uri)


def register_client(session: Session, kek: bytes, spec: ClientSpec,
                    *, secret: str | None = None) -> tuple[OAuthClient, str | None]:
    """Create a client; returns it and its secret (``None`` for public clients), shown once.

    ``secret`` lets the embedded setup seed deterministic demo secrets; otherwise one is drawn.
    Flushes, does not commit.

    :raise InvalidClientMetadata: 422. :raise Conflict: the client id is taken (409).
    """
    validate_spec(spec)
    client_id = spec.client_id or f"app-{secrets.token_hex(8)}"
    if session.get(OAuthClient, client_id) is not None:
        raise Conflict(f"client {client_id} already exists", code="client_exists")
    plain = None
    if spec.client_type == CONFIDENTIAL:
        plain = secret or new_secret()
    method = spec.token_endpoint_auth_method or ("none" if spec.client_type == PUBLIC else "client_secret_basic")
    if (spec.client_type == PUBLIC) != (method == "none"):
        raise InvalidClientMetadata("public clients authenticate with 'none', confidential ones with a secret",
                                    errors={"token_endpoint_auth_method": [method]})
    client = OAuthClient(
        client_id=client_id, name=spec.name.strip(), client_type=spec.client_type,
        secret_hash=hash_secret(secret_hash_key(kek), plain) if plain else None,
        token_endpoint_auth_method=method,
        redirect_uris=list(spec.redirect_uris), post_logout_redirect_uris=list(spec.post_logout_redirect_uris),
        grant_types=list(spec.grant_types), scopes=sorted(set(spec.scopes)), audiences=sorted(set(spec.audiences)),
        access_token_lifetime=spec.access_token_lifetime, refresh_token_lifetime=spec.refresh_token_lifetime,
        min_acr=spec.min_acr, id_token_alg=spec.id_token_alg, skip_consent=spec.skip_consent,
    )
    session.add(client)
    session.flush()
    return client, plain


def get_client(session: Session, client_id: str) -> OAuthClient:
    """:raise ClientNotFound: no such client (404)."""
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise ClientNotFound(f"no client {client_id}")
    return client


def list_clients(session: Session) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.client_id)))


def rotate_secret(session: Session, kek: bytes, client_id: str) -> str:
    """A new secret for a confidential client (the old one stops working at once); flushes."""
    client = get_client(session, client_id)
    if client.client_type != CONFIDENTIAL:
        raise InvalidClientMetadata("public clients have no secret")
    plain = new_secret()
    client.secret_hash = hash_secret(secret_hash_key(kek), plain)
    session.flush()
    return plain


def disable_client(session: Session, client_id: str) -> OAuthClient:
    """Disable a client and revoke its refresh tokens; flushes."""
    client = get_client(session, client_id)
    now = utcnow()
    client.disabled_at = client.disabled_at or now
    for token in session.scalars(select(RefreshToken).where(RefreshToken.client_id == client_id,
                                                            RefreshToken.revoked_at.is_(None))):
        token.revoked_at = now
    session.flush()
    return client
