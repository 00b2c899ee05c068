"""The authorization endpoint's decision: log in, re-log in, step up, ask consent, or issue.

Authlib validates the request (client, exact redirect URI, response type, scope, PKCE).
What it does not decide is here, as a plain function of its inputs: ``prompt``, ``max_age``,
``acr_values`` (the client's minimum level or the requested one; below it -> step-up, or
``unmet_authentication_requirements`` with ``prompt=none``), ``login_hint``, staff scopes
(granted only when requested, allowed for the client and held by the person), consent.
The view (:mod:`identity.oauth.pages`) turns the :class:`Decision` into HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from identity.oauth import consents
from identity.oauth.kernel import PERSON_SCOPES
from identity.oauth.models import OAuthClient
from identity.oauth.tokens import acr_level

# What the view does next.
LOGIN, ERROR, CONSENT, DENY, ISSUE = "login", "error", "consent", "deny", "issue"
# Errors (sent to the client's redirect URI).
LOGIN_REQUIRED = "login_required"
INVALID_REQUEST = "invalid_request"
UNMET_AUTHENTICATION = "unmet_authentication_requirements"
CONSENT_REQUIRED = "consent_required"


@dataclass(frozen=True)
class AuthorizeRequest:
    prompts: frozenset[str]
    requested_scopes: list[str]  # after Authlib: requested ∩ the client's
    max_age: str | None = None
    acr_values: str | None = None
    login_hint: str | None = None
    returned_after: str = ""  # the marker a forced login's return carries (its start time)
    decision: str | None = None  # the consent form's answer (POST), else None


@dataclass(frozen=True)
class SignedIn:
    session_id: str
    auth_time: datetime
    amr: list[str]


@dataclass(frozen=True)
class Decision:
    action: str
    error: str | None = None
    description: str = ""
    forced: bool = False  # LOGIN: a fresh login (prompt=login / max_age), marked on the return URL
    min_acr: int | None = None  # LOGIN: a step-up to this level
    scopes: list[str] = field(default_factory=list)  # CONSENT / ISSUE
    record_consent: bool = False  # ISSUE: the person just allowed it on the consent page


def required_level(client: OAuthClient, acr_values: str | None) -> int:
    """The client's minimum, raised by the lowest of our levels the request names in ``acr_values``."""
    requested = [acr_level(v) for v in (acr_values or "").split()]
    requested = [level for level in requested if level]
    return max(client.min_acr, min(requested) if requested else 1)


def granted_scopes(session: Session, requested: list[str], person) -> list[str]:
    """Requested ∩ client's (Authlib did that) ∩, for staff scopes, what the person holds.

    A staff scope is any scope a role can grant (:data:`ROLE_SCOPES`) or a grant holds, whether
    or not anybody holds it today: otherwise a role nobody has been given yet (``seal:admin`` on
    a new node) would be handed to every person who signs in to a client allowed that scope.
    """
    from identity.claims import staff_scopes
    from identity.models import StaffGrant
    from identity.organisations import ROLE_SCOPES

    every_staff_scope: set[str] = {scope for scopes in ROLE_SCOPES.values() for scope in scopes}
    for scopes in session.scalars(select(StaffGrant.scopes)):
        every_staff_scope.update(scopes.split())
    held = staff_scopes(session, person)
    return [s for s in requested if s in PERSON_SCOPES or s not in every_staff_scope or s in held]


def decide(session: Session, *, client: OAuthClient, person, login: SignedIn | None, req: AuthorizeRequest,
           now: datetime) -> Decision:
    """What the authorization endpoint does for this request, this person and this login."""
    silent = "none" in req.prompts
    if person is None or login is None:
        if silent:
            return Decision(ERROR, LOGIN_REQUIRED, "No one is logged in.")
        return Decision(LOGIN)

    if req.max_age is not None and (not req.max_age.isdigit() or len(req.max_age) > 9):
        return Decision(ERROR, INVALID_REQUEST, "max_age must be a non-negative integer")
    after = req.returned_after
    just_logged_in = after.isdigit() and login.auth_time.timestamp() >= int(after) - 1
    age = (now - login.auth_time).total_seconds()
    if not just_logged_in and ("login" in req.prompts or (req.max_age is not None and age > int(req.max_age))):
        if silent:
            return Decision(ERROR, LOGIN_REQUIRED, "A fresh login is required.")
        return Decision(LOGIN, forced=True)

    level = required_level(client, req.acr_values)
    if person.assurance_level < level:
        if silent:
            return Decision(ERROR, UNMET_AUTHENTICATION, f"Assurance level {level} is required.")
        return Decision(LOGIN, min_acr=level)

    scopes = granted_scopes(session, req.requested_scopes, person)
    if not scopes:
        return Decision(ERROR, INVALID_REQUEST, "None of the requested scopes can be granted.")
    if req.decision is not None:  # the consent form was posted
        if req.decision != "allow":
            return Decision(DENY)
        return Decision(ISSUE, scopes=scopes, record_consent=True)
    remembered = consents.has_consent(session, person.id, client.client_id, scopes)
    if not client.skip_consent and ("consent" in req.prompts or not remembered):
        if silent:
            return Decision(ERROR, CONSENT_REQUIRED, "The person has not consented yet.")
        return Decision(CONSENT, scopes=scopes)
    return Decision(ISSUE, scopes=scopes)
