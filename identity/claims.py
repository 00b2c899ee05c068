"""What identity says about a person in tokens and userinfo: ``acr`` values, OIDC claims per
scope, staff scopes. Plain Python, takes a session."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy.orm import Session

from common.crypto.pii import mask_email, mask_id_number, mask_mobile
from identity.accounts import decrypt_email, decrypt_id_number, decrypt_mobile
from identity.models import Person
from identity.organisations import active_grants, organisations_of, staff_roles

# The scope that discloses each kind of personal data in full, and its mask otherwise.
DISCLOSURE: dict[str, tuple[str, Callable[[str], str]]] = {
    "mobile": ("phone:full", mask_mobile), "email": ("email:full", mask_email),
    "id_number": ("idcard:full", mask_id_number)}


def disclosed(kind: str, value: str | None, scopes: Collection[str]) -> str | None:
    """A person's ``mobile`` / ``email`` / ``id_number`` as a caller with ``scopes`` may see it:
    in full with ``phone:full`` / ``email:full`` / ``idcard:full``, else masked; None if unset.
    The one rule for the people API, the batch lookup, userinfo and ID tokens."""
    if not value:
        return None
    full_scope, mask = DISCLOSURE[kind]
    return value if full_scope in scopes else mask(value)


def acr_for(level: int) -> str:
    return f"urn:xsn:acr:L{level}"


def person_claims(session: Session, person: Person, scopes: set[str]) -> dict[str, Any]:
    """Claims for userinfo and ID tokens, by scope; personal data masked unless ``*:full``."""
    claims: dict[str, Any] = {"sub": person.id, "acr": acr_for(person.assurance_level),
                              "assurance_level": person.assurance_level}
    if "profile" in scopes:
        claims["name"] = person.name
        claims["updated_at"] = int(person.updated_at.timestamp())
    if "phone" in scopes or "phone:full" in scopes:
        mobile = disclosed("mobile", decrypt_mobile(session, person), scopes)
        if mobile:
            claims["phone_number"] = mobile
            claims["phone_number_verified"] = False
    if "email" in scopes or "email:full" in scopes:
        address = disclosed("email", decrypt_email(session, person), scopes)
        if address:
            claims["email"] = address
            claims["email_verified"] = False  # as for the phone: identity has no verification flow yet
    if "idcard" in scopes or "idcard:full" in scopes:
        claims["id_number"] = disclosed("id_number", decrypt_id_number(session, person), scopes)
    if "org" in scopes:
        claims["organisations"] = [{"credit_code": org.credit_code, "name": org.name, "role": role}
                                   for org, role in organisations_of(session, person)]
    if "staff" in scopes:
        claims["staff"] = staff_roles(session, person)
    return claims


def staff_scopes(session: Session, person: Person) -> set[str]:
    """Scopes granted by the person's active staff roles (empty for non-staff)."""
    scopes: set[str] = set()
    for grant in active_grants(session, person):
        scopes.update(grant.scopes.split())
    return scopes
