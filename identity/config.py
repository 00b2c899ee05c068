"""Every setting of the identity node, declared once (defaults; ``XSN_<NAME>`` overrides)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from common.config import PROBE_ROUTES

SETTINGS: dict[str, Any] = {
    # The gateway polls the revocation feed every second (GATEWAY_REVOCATION_POLL): DEBUG lines.
    "ACCESS_LOG_DEBUG_ROUTES": [*PROBE_ROUTES, "/oauth/revocations"],
    # -- accounts and login --
    # argon2id parameters; None = argon2-cffi's defaults (RFC 9106 low-memory profile).
    # Tests set cheap values: a default hash costs ~50-200 ms.
    "PASSWORD_HASH_TIME_COST": None,
    "PASSWORD_HASH_MEMORY_COST": None,
    "PASSWORD_HASH_PARALLELISM": None,
    "LOGIN_MAX_FAILURES": 5,  # per account, then locked for LOGIN_LOCK_MINUTES
    "LOGIN_LOCK_MINUTES": 15,
    "LOGIN_RATE_LIMIT": "20/minute",  # login POSTs per client IP
    "LOGIN_SESSION_HOURS": 12,
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "TOTP_ISSUER": "西安统一身份认证",
    # RealNameVerifier: "embedded" (local demo register) or "http" (population-register service)
    "REALNAME_VERIFIER": "embedded",
    "REALNAME_URL": None,
    "REALNAME_API_KEY": None,
    "REALNAME_TIMEOUT": 3.0,
    "REALNAME_RATE_LIMIT": "5/hour",  # verification attempts per person
    # Subjects one POST /api/v1/people/lookup may name (the hub asks in chunks of at most this).
    "PEOPLE_LOOKUP_MAX": 500,
    "PASSWORD_RESET_MINUTES": 30,
    "PASSWORD_RESET_RATE_LIMIT": "5/hour",  # reset requests per client IP
    # Reset links go to the message hub as this client (scope messaging:send; the hub lets it
    # send to raw numbers); "memory" keeps them in process (tests). The secret: configured, or in
    # the embedded run var/clients.json (common.peers.credentials).
    "IDENTITY_NOTIFIER": "hub",
    "IDENTITY_CLIENT_ID": "xsn-identity",
    "IDENTITY_CLIENT_SECRET": None,
    "IDENTITY_NOTIFY_SWEEP_SECONDS": 30,  # the beat sweeper (identity.tasks) re-sends what is pending
    # -- the OAuth 2.0 / OIDC server --
    "OAUTH_CODE_LIFETIME": 120,  # seconds an authorization code is valid
    "OAUTH_TOKEN_FAILURE_LIMIT": "20/minute",  # failed token requests per client IP and per client id
    "OAUTH_SCOPES_SUPPORTED": None,  # None: any scope a client is registered for
    # Demo client secrets derived from the KEK, written to var/clients.json (embedded only).
    "OAUTH_DEMO_CLIENT_SECRETS": True,
    # -- federation with the provincial node (身份认证服务互联互通); off unless the issuer is set --
    "FEDERATION_UPSTREAM_ISSUER": None,
    "FEDERATION_CLIENT_ID": None,
    "FEDERATION_CLIENT_SECRET": None,
    "FEDERATION_SCOPE": "openid profile idcard:full",
    "FEDERATION_TIMEOUT": 5.0,
}


def public_url(config: dict[str, Any]) -> str:
    """Identity's public base URL (through the gateway), from configuration only: every
    absolute URL identity emits (issuer, reset links, callbacks) starts with it, never with
    the request's ``Host``, which a client chooses."""
    return (config.get("OAUTH_ISSUER") or f"{config['PUBLIC_BASE_URL'].rstrip('/')}/identity").rstrip("/")
