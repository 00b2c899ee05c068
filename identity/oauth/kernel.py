"""Small shared pieces of the OAuth server that every part needs (Flask-free)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from identity.config import public_url

# Scopes about a person: never granted to a client-credentials token (it has no person).
PERSON_SCOPES = frozenset({"openid", "profile", "phone", "phone:full", "email", "email:full", "idcard",
                           "idcard:full", "org", "staff", "offline_access"})
# ... except these: for a service they mean "may read it unmasked through the people API"
# (identity.api), e.g. the message hub's directory resolving a subject to a mobile number.
SERVICE_DISCLOSURE_SCOPES = frozenset({"phone:full", "email:full", "idcard:full"})


def issuer_url(config: dict[str, Any]) -> str:
    """The issuer identifier: identity's public URL, from configuration only (never the ``Host``)."""
    return public_url(config)


def digest(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (codes, refresh tokens, federation states)."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class AuthContext:
    """How and when the person authenticated, carried from the login to every token."""

    session_id: str | None
    auth_time: datetime
    acr: int
    amr: list[str]
