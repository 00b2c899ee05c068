"""Who issues: the department a caller issues for (:class:`Issuer`), found from its token's
claims and the node's configuration (:mod:`licenses.config`), and whether it may issue a type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.errors import Forbidden, Problem

from .models import LicenceType


class NotAnIssuer(Forbidden):
    code, title = "issuer_not_allowed", "This caller may not issue this licence type"


class TypeRetired(Problem):
    status, code, title = 409, "licence_type_retired", "The licence type no longer issues licences"


@dataclass(frozen=True)
class Issuer:
    """The department a caller issues for, and who the caller is."""

    code: str
    name: str
    actor: str
    client_id: str | None = None
    slugs: frozenset[str] | None = None  # a staff grant may limit the types; None = any


def issuers_for(claims: dict[str, Any], config: dict[str, Any]) -> list[Issuer]:
    """Every department this token may issue for (see :mod:`licenses.config`)."""
    sub, client_id = str(claims.get("sub", "")), claims.get("client_id")
    departments: dict[str, str] = config["LICENSES_DEPARTMENTS"]
    names = {code: name for name, code in departments.items()}
    found: list[Issuer] = []
    mapped = config["LICENSES_ISSUER_CLIENTS"].get(client_id) if client_id and sub == client_id else None
    if mapped:
        found.append(Issuer(mapped, names.get(mapped, mapped), sub, client_id))
    for role in claims.get("roles") or []:
        if not isinstance(role, dict) or role.get("role") != "license_issuer":
            continue
        code = departments.get(str(role.get("department")))
        if code:
            slugs = (role.get("params") or {}).get("license_types")
            found.append(Issuer(code, str(role["department"]), sub, client_id,
                                frozenset(slugs) if isinstance(slugs, list) else None))
    return found


def choose_issuer(candidates: list[Issuer], requested: str | None) -> Issuer:
    """:raise NotAnIssuer:"""
    if requested:
        candidates = [c for c in candidates if c.code == requested]
    if not candidates:
        raise NotAnIssuer("the token is not mapped to an issuing department"
                          + (f" {requested}" if requested else ""))
    if len({c.code for c in candidates}) > 1:
        raise NotAnIssuer("the token may issue for several departments: name one in issuer_code")
    return candidates[0]


def check_issuer(issuer: Issuer, licence_type: LicenceType) -> None:
    """:raise NotAnIssuer: :raise TypeRetired:"""
    if licence_type.status != "active":
        raise TypeRetired(f"licence type {licence_type.code} is retired")
    if issuer.code not in licence_type.issuers:
        raise NotAnIssuer(f"{issuer.name} ({issuer.code}) may not issue {licence_type.name}")
    if issuer.slugs is not None and licence_type.slug not in issuer.slugs:
        raise NotAnIssuer(f"the staff grant does not cover {licence_type.slug}")
