"""Legal persons (法人) with their representatives, and staff (工作人员) role grants.

Flask-free; functions named ``create_*``/``link_*``/``grant_*`` flush, callers commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Conflict, NotFound
from common.values.codes import CreditCode, InvalidCode
from identity.errors import InvalidInput
from identity.models import Organisation, OrganisationMember, Person, StaffGrant

LEGAL_REPRESENTATIVE, AGENT = "legal_representative", "agent"  # 法定代表人, 经办人
MEMBER_ROLES = (LEGAL_REPRESENTATIVE, AGENT)

# Staff role -> scopes the role grants in tokens. Parameters (e.g. licence types) narrow
# what a scope allows and travel in the ``staff`` claim; each service enforces them.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "license_issuer": ("licenses:issue", "licenses:read", "seal:use"),
    "license_verifier": ("licenses:verify",),
    "payment_window": ("payment:window", "payment:read"),
    "finance": ("payment:read", "payment:reconcile"),
    "auditor": ("audit:read", "seal:log:read"),
    "identity_admin": ("identity:admin", "identity:people:read"),
    "seal_admin": ("seal:admin", "seal:use"),
    "messaging_operator": ("messaging:send",),
    "license_admin": ("licenses:admin", "licenses:read"),
    "payment_admin": ("payment:admin", "payment:read"),
    "messaging_admin": ("messaging:admin",),
}


class OrganisationExists(Conflict):
    code, title = "organisation_exists", "An organisation with this credit code already exists"


class OrganisationNotFound(NotFound):
    code, title = "organisation_not_found", "No such organisation"


class GrantNotFound(NotFound):
    code, title = "grant_not_found", "No such staff grant"


def parse_credit_code(raw: str) -> str:
    """:raise InvalidInput: not a GB 32100 code."""
    try:
        return CreditCode.parse(raw).value
    except InvalidCode as exc:
        raise InvalidInput({"credit_code": [exc.code]}) from None


def find_organisation(session: Session, credit_code: str) -> Organisation | None:
    try:
        code = CreditCode.parse(credit_code).value
    except InvalidCode:
        return None
    return session.scalar(select(Organisation).where(Organisation.credit_code == code))


def create_organisation(session: Session, *, credit_code: str, name: str) -> Organisation:
    """:raise InvalidInput: :raise OrganisationExists:"""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not 1 <= len(name) <= 200:
        errors["name"] = ["invalid_name"]
    try:
        code = parse_credit_code(credit_code)
    except InvalidInput as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidInput(errors)
    if find_organisation(session, code) is not None:
        raise OrganisationExists()
    organisation = Organisation(credit_code=code, name=name)
    session.add(organisation)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise OrganisationExists() from None
    return organisation


def link_member(session: Session, organisation: Organisation, person: Person, role: str) -> OrganisationMember:
    """Link a person as legal representative (one per organisation: replaces) or agent.

    :raise InvalidInput: unknown role.
    """
    if role not in MEMBER_ROLES:
        raise InvalidInput({"role": ["invalid_role"]})
    existing = {(m.person_id, m.role): m for m in organisation.members}
    if (person.id, role) in existing:
        return existing[(person.id, role)]
    if role == LEGAL_REPRESENTATIVE:
        for member in list(organisation.members):
            if member.role == LEGAL_REPRESENTATIVE:
                organisation.members.remove(member)
    member = OrganisationMember(person_id=person.id, role=role)
    organisation.members.append(member)
    session.flush()
    return member


def unlink_member(session: Session, organisation: Organisation, person_id: str, role: str) -> None:
    for member in list(organisation.members):
        if member.person_id == person_id and member.role == role:
            organisation.members.remove(member)
    session.flush()


def organisations_of(session: Session, person: Person) -> list[tuple[Organisation, str]]:
    rows = session.execute(select(Organisation, OrganisationMember.role)
                           .join(OrganisationMember, OrganisationMember.organisation_id == Organisation.id)
                           .where(OrganisationMember.person_id == person.id)
                           .order_by(Organisation.credit_code, OrganisationMember.role))
    return [(org, role) for org, role in rows]


# --- staff grants ------------------------------------------------------------------------------


def grant_staff_role(session: Session, person: Person, *, department: str, role: str,
                     params: dict[str, Any] | None = None, scopes: list[str] | None = None) -> StaffGrant:
    """Grant a role in a department; ``scopes`` default to the role's :data:`ROLE_SCOPES`.

    :raise InvalidInput: unknown role, empty department, scopes outside the role's.
    """
    errors: dict[str, list[str]] = {}
    department = (department or "").strip()
    if not 1 <= len(department) <= 128:
        errors["department"] = ["invalid_department"]
    if role not in ROLE_SCOPES:
        errors["role"] = ["invalid_role"]
    elif scopes is not None and not set(scopes) <= set(ROLE_SCOPES[role]):
        errors["scopes"] = ["scope_not_in_role"]
    if params is not None and not isinstance(params, dict):
        errors["params"] = ["invalid_params"]
    if errors:
        raise InvalidInput(errors)
    chosen = list(ROLE_SCOPES[role]) if scopes is None else sorted(set(scopes))
    grant = StaffGrant(person_id=person.id, department=department, role=role, params=params or {},
                       scopes=" ".join(chosen))
    session.add(grant)
    session.flush()
    session.expire(person, ["grants"])
    return grant


def revoke_grant(session: Session, grant_id: int) -> StaffGrant:
    """:raise GrantNotFound:"""
    grant = session.get(StaffGrant, grant_id)
    if grant is None or grant.revoked_at is not None:
        raise GrantNotFound()
    grant.revoked_at = utcnow()
    session.flush()
    return grant


def active_grants(session: Session, person: Person) -> list[StaffGrant]:
    return list(session.scalars(select(StaffGrant).where(StaffGrant.person_id == person.id,
                                                         StaffGrant.revoked_at.is_(None))
                                .order_by(StaffGrant.id)))


def staff_roles(session: Session, person: Person) -> list[dict[str, Any]]:
    """The ``staff`` claim: one entry per active grant."""
    return [{"department": g.department, "role": g.role, "params": g.params or {}}
            for g in active_grants(session, person)]
