"""Online verification (核验) of an authorisation code by a service window.

Checks, each reported with its outcome: the authorisation (exists, not revoked, not expired,
uses left, presented by its audience), the licence (status, validity dates), the document
(stored digest recomputed) and the seal signature (the seal node's verification of the
``SES_Signature`` over the document's SM3). Every attempt is a :class:`UseRecord`, accepted or
refused with its reason; a refusal changes nothing else. An accepted use increments the
authorisation's count with a conditional update, so two windows racing for the last use
cannot both get it. Only the authorised face fields are returned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, exists, insert, literal, null, select, true, update
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.db import utcnow
from common.errors import Problem

from . import issuing
from .authorisations import normalise_code
from .issuing import Deps
from .models import VALID, Authorisation, Licence, LicenceType, UseRecord

# refusal code -> HTTP status
REFUSALS = {
    "authorisation_not_found": 404,
    "authorisation_revoked": 410,
    "authorisation_expired": 410,
    "authorisation_used_up": 410,
    "wrong_audience": 403,
    "licence_revoked": 409,
    "licence_suspended": 409,
    "licence_superseded": 409,
    "licence_expired": 409,
    "licence_not_yet_valid": 409,
    "document_altered": 409,
    "seal_signature_invalid": 409,
}


class VerificationRefused(Problem):
    title = "Verification refused"

    def __init__(self, code: str, detail: str, checks: dict[str, Any]) -> None:
        super().__init__(detail, code=code, status=REFUSALS[code], checks=checks)


@dataclass(frozen=True)
class Verifier:
    """The window: token subject and client, and the organisations (credit codes) it acts for."""

    sub: str
    client_id: str | None
    organisations: frozenset[str] = field(default_factory=frozenset)

    def names(self) -> set[str]:
        return {n for n in (self.sub, self.client_id, *self.organisations) if n}


def verifier_from_claims(claims: dict[str, Any], config: dict[str, Any]) -> Verifier:
    """Organisations: the departments of the person's staff grants (``roles``) and the
    organisation mapped to a verifying service client (``LICENSES_VERIFIER_CLIENTS``)."""
    departments: dict[str, str] = config["LICENSES_DEPARTMENTS"]
    orgs = {departments[r["department"]] for r in claims.get("roles") or []
            if isinstance(r, dict) and r.get("department") in departments}
    mapped = config.get("LICENSES_VERIFIER_CLIENTS", {}).get(claims.get("client_id"))
    if mapped and claims.get("sub") == claims.get("client_id"):
        orgs.add(mapped)
    return Verifier(str(claims.get("sub", "")), claims.get("client_id"), frozenset(orgs))


# The hot path's statements, built once, Core on the tables (nothing is read back into ORM
# entities: the ORM's lookup, identity map and flush were most of a verification's CPU time).
# The lookup reads only the columns a verification uses (29 of the three tables' 59).
_auths, _licences, _types, _uses = (Authorisation.__table__, Licence.__table__, LicenceType.__table__,
                                    UseRecord.__table__)
_AUTH_COLUMNS = ("id", "licence_id", "fields", "purpose", "audience", "expires_at", "max_uses", "uses", "status")
_LICENCE_COLUMNS = ("id", "identifier", "type_code", "version", "face_number", "issuer_code", "issuer_name",
                    "holder_kind", "holder_name", "holder_code_masked", "valid_from", "valid_until", "status",
                    "document_enc", "document_sm3", "signature_b64", "issued_at")
_FOUND = (select(*(_auths.c[n].label(f"a_{n}") for n in _AUTH_COLUMNS),
                 *(_licences.c[n].label(f"l_{n}") for n in _LICENCE_COLUMNS),
                 _types.c.name.label("t_name"), _types.c.fields.label("t_fields"))
          .join_from(_auths, _licences, _licences.c.id == _auths.c.licence_id)
          .join(_types, _types.c.code == _licences.c.type_code).where(_auths.c.code == bindparam("auth_code")))
# A use is taken only while the authorisation allows it, judged on the row as it is when the
# UPDATE runs (PostgreSQL re-reads a row another transaction changed meanwhile), so two windows
# racing for the last use cannot both get it.
_USABLE = (_auths.c.status == "active", _auths.c.uses < _auths.c.max_uses,
           _auths.c.expires_at > bindparam("now", type_=_auths.c.expires_at.type))
_RECORD_VALUES = {"verifier": bindparam("verifier"), "verifier_client": bindparam("verifier_client"),
                  "verifier_org": bindparam("verifier_org"), "request_id": bindparam("request_id"),
                  "at": bindparam("at", type_=_uses.c.at.type)}
_LOOKUP = _FOUND.add_columns(null().label("taken"))
_TAKE_USE = update(_auths).where(_auths.c.id == bindparam("auth_id"), *_USABLE).values(uses=_auths.c.uses + 1)
_RECORD = insert(_uses)


def _postgresql_claim():
    """PostgreSQL: the lookup, the use taken and the accepted use record in one statement (one
    round trip; data-modifying CTEs). ``taken`` is the new use count, or NULL when the
    authorisation (or the window) does not allow a use: then nothing was written."""
    found = _FOUND.cte("found")
    taken = (update(_auths).where(_auths.c.id == found.c.a_id, *_USABLE,
                                  _auths.c.audience == any_(bindparam("names", type_=ARRAY(String))))
             .values(uses=_auths.c.uses + 1).returning(_auths.c.uses).cte("taken"))
    record = insert(_uses).from_select(
        ["licence_id", "authorisation_id", "purpose", "outcome", *_RECORD_VALUES],
        select(found.c.l_id, found.c.a_id, found.c.a_purpose, literal("accepted"), *_RECORD_VALUES.values())
        .select_from(found).where(exists(taken.select()))).cte("record")
    return (select(found, taken.c.uses.label("taken")).select_from(found.outerjoin(taken, true()))
            .add_cte(record))


_CLAIM = _postgresql_claim()


def _record(session: Session, verifier: Verifier, *, licence_id: str | None, auth: Any,
            outcome: str, reason: str | None, request_id: str | None) -> None:
    session.connection().execute(_RECORD, {
        "licence_id": licence_id, "authorisation_id": auth.id if auth else None,
        **_verifier_params(verifier, request_id), "purpose": auth.purpose if auth else None, "outcome": outcome,
        "reason": reason, "at": utcnow()})


def licence_checks(deps: Deps, row: Licence, today,
                   document: bytes | None = None) -> tuple[dict[str, dict], str | None]:
    """The licence's own checks; ``(checks, first refusal code or None)``. ``document``: the
    licence's decrypted canonical document when the caller has it already."""
    checks: dict[str, dict] = {}
    refusal = None
    status_ok = row.status == VALID
    checks["status"] = {"ok": status_ok, "detail": row.status}
    if not status_ok:
        refusal = f"licence_{row.status}"
    in_window = row.valid_from <= today and (row.valid_until is None or today <= row.valid_until)
    checks["validity"] = {"ok": in_window, "detail": f"{row.valid_from} – {row.valid_until or '长期'}"}
    if not in_window and refusal is None:
        refusal = "licence_not_yet_valid" if today < row.valid_from else "licence_expired"
    document = issuing.document_of(deps, row) if document is None else document
    document_ok = sm3(document).hex() == row.document_sm3
    checks["document"] = {"ok": document_ok, "detail": "SM3 of the canonical document"}
    if not document_ok and refusal is None:
        refusal = "document_altered"
    if refusal is None:
        seal = deps.seal.verify(row.signature_b64 or "", row.document_sm3)
        checks["seal"] = {"ok": seal.valid, "detail": "SES_Signature verified by the seal node",
                          "checks": seal.checks}
        if not seal.valid:
            refusal = "seal_signature_invalid"
    else:
        checks["seal"] = {"ok": False, "skipped": True, "detail": "not checked: the licence is not usable"}
    return checks, refusal


def _verifier_params(verifier: Verifier, request_id: str | None) -> dict[str, Any]:
    return {"verifier": verifier.sub, "verifier_client": verifier.client_id,
            "verifier_org": ",".join(sorted(verifier.organisations))[:64] or None, "request_id": request_id}


def _split(found) -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]:
    """The joined row as the authorisation, the licence and its type (attribute access, as the
    ORM entities would give, for :func:`licence_checks` and :func:`licence_summary`)."""
    data = found._mapping
    return (SimpleNamespace(**{n: data[f"a_{n}"] for n in _AUTH_COLUMNS}),
            SimpleNamespace(**{n: data[f"l_{n}"] for n in _LICENCE_COLUMNS}),
            SimpleNamespace(name=found.t_name, fields=found.t_fields))


def verify_code(session: Session, deps: Deps, verifier: Verifier, raw_code: str, *,
                request_id: str | None = None) -> dict[str, Any]:
    """Verify and record one use. :raise VerificationRefused: (the refusal is recorded first)

    On PostgreSQL one statement finds the authorisation, takes a use if the authorisation
    allows it and writes the accepted use record (:data:`_CLAIM`); the checks below then decide,
    and a refusal rolls that back before recording itself. Elsewhere (SQLite) the use is taken
    and recorded after the checks. Either way the answer is sent only after its commit.
    """
    code = normalise_code(raw_code)
    now = utcnow()
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    found = None
    if code:
        params = {"auth_code": code, "now": now}
        if postgresql:
            params.update(_verifier_params(verifier, request_id), names=sorted(verifier.names()), at=now)
        found = connection.execute(_CLAIM if postgresql else _LOOKUP, params).first()
    auth, licence, licence_type = _split(found) if found else (None, None, None)

    def refuse(reason: str, detail: str, checks: dict[str, Any], licence_id: str | None) -> VerificationRefused:
        if found is not None and found.taken is not None:
            session.rollback()  # the use the claim took, and its accepted record, are undone
        _record(session, verifier, licence_id=licence_id, auth=auth, outcome="refused", reason=reason,
                request_id=request_id)
        session.commit()
        return VerificationRefused(reason, detail, checks)

    if auth is None:
        raise refuse("authorisation_not_found", "no authorisation has this code", {}, None)
    checks: dict[str, Any] = {}
    auth_refusal = None
    if auth.status != "active":
        auth_refusal = ("authorisation_revoked", "the holder revoked this authorisation")
    elif auth.expires_at <= now:
        auth_refusal = ("authorisation_expired", "the authorisation has expired")
    elif auth.uses >= auth.max_uses:
        auth_refusal = ("authorisation_used_up", "the authorisation has no uses left")
    elif auth.audience not in verifier.names():
        auth_refusal = ("wrong_audience", "this authorisation is for another organisation or window")
    checks["authorisation"] = {"ok": auth_refusal is None, "detail": auth_refusal[1] if auth_refusal else
                               f"{auth.uses + 1} of {auth.max_uses} uses, until {auth.expires_at.isoformat()}"}
    if auth_refusal:
        raise refuse(auth_refusal[0], auth_refusal[1], checks, auth.licence_id)
    # The face is read from the document whose digest was just checked (one decryption, and
    # the fields released are exactly the sealed ones).
    document = issuing.document_of(deps, licence)
    licence_result, refusal = licence_checks(deps, licence, issuing.today(), document)
    checks.update(licence_result)
    if refusal:
        raise refuse(refusal, f"the licence failed verification: {refusal}", checks, licence.id)
    uses = found.taken
    if not postgresql and connection.execute(_TAKE_USE, {"auth_id": auth.id, "now": now}).rowcount == 1:
        _record(session, verifier, licence_id=licence.id, auth=auth, outcome="accepted", reason=None,
                request_id=request_id)
        uses = auth.uses + 1
    if uses is None:  # another window took the last use meanwhile
        raise refuse("authorisation_used_up", "the authorisation has no uses left", checks, licence.id)
    session.commit()
    face = json.loads(document)["fields"]
    return {"valid": True, "checks": checks, "purpose": auth.purpose,
            "licence": licence_summary(licence, licence_type),
            "fields": {name: face[name] for name in auth.fields if name in face},
            "labels": {spec["name"]: spec["label"] for spec in licence_type.fields if spec["name"] in auth.fields},
            "authorisation": {"expires_at": auth.expires_at, "uses": uses, "max_uses": auth.max_uses}}


def licence_summary(row: Licence, licence_type: LicenceType) -> dict[str, Any]:
    """What any verifier may see without a field authorisation."""
    name = row.holder_name
    return {"identifier": row.identifier, "type_code": row.type_code, "type_name": licence_type.name,
            "face_number": row.face_number, "version": row.version, "status": row.status,
            "issuer": {"code": row.issuer_code, "name": row.issuer_name},
            "holder": {"kind": row.holder_kind, "name": name[:1] + "*" * (len(name) - 1),
                       "code": row.holder_code_masked},
            "valid_from": row.valid_from, "valid_until": row.valid_until, "issued_at": row.issued_at}
