"""Online verification (核验) of an authorisation code by a service window.

Checks, each reported with its outcome: the authorisation (exists, not revoked, not expired,
uses left, presented by its audience), the licence (status, validity dates), the document
(stored digest recomputed) and the seal signature (the seal node's verification of the
``SES_Signature`` over the document's SM3). Every attempt is a :class:`UseRecord`, accepted or
refused with its reason; a refusal changes nothing else. An accepted use increments the
authorisation's count with a conditional update, so two windows racing for the last use
cannot both get it (:mod:`licenses.verification_store`: how, on PostgreSQL and elsewhere). Only
the authorised face fields are returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import structlog

from common.db import utcnow
from common.errors import Problem
from common.peers.seal_client import signature_digest

from . import issuing
from .authorisations import normalise_code, state_of
from .documents import StoredDocument
from .issuing import Deps
from .models import VALID, Licence, LicenceType
from .verification_store import Found, PostgresStore, SessionStore, Verified

Store = PostgresStore | SessionStore
log = structlog.get_logger("xsn.licenses.verification")

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


def licence_checks(deps: Deps, row: Licence, today, document: StoredDocument | None = None,
                   seal=None) -> tuple[dict[str, dict], str | None]:
    """The licence's own checks; ``(checks, first refusal code or None)``. ``document``: the
    licence's canonical document as read from ``row`` when the caller has read it already;
    ``seal``: the seal node's verdict of ``row``'s signature over its digest, when asked already.

    A check added here (or to :func:`_decide`) must also be added to the statement that verifies
    a known code in one round trip (``verification_store._PG_TAKE_KNOWN``, or to what
    :func:`_verify_known` checks before sending it): that statement takes the use only when every
    check passes, and a check it does not make would refuse only after the use was taken."""
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
    document = deps.documents.read(deps.cipher, row.document_enc) if document is None else document
    document_ok = document.sm3 == row.document_sm3
    checks["document"] = {"ok": document_ok, "detail": "SM3 of the canonical document"}
    if not document_ok and refusal is None:
        refusal = "document_altered"
    if refusal is None:
        if seal is None:
            seal = deps.seal.verify(row.signature_b64 or "", row.document_sm3)
        checks["seal"] = {"ok": seal.valid, "detail": "SES_Signature verified by the seal node",
                          "checks": seal.checks}
        if not seal.valid:
            refusal = "seal_signature_invalid"
    else:
        checks["seal"] = {"ok": False, "skipped": True, "detail": "not checked: the licence is not usable"}
    return checks, refusal


_REFUSED = {"revoked": ("authorisation_revoked", "the holder revoked this authorisation"),
            "expired": ("authorisation_expired", "the authorisation has expired"),
            "used_up": ("authorisation_used_up", "the authorisation has no uses left")}


def _decide(deps: Deps, verifier: Verifier, found: Found, now, *, known: Verified | None = None,
            seal=None, today=None) -> tuple[dict[str, Any], tuple[str, str] | None, StoredDocument | None]:
    """Every check of one authorisation and its licence: ``(checks, (refusal code, detail) or
    None, the document when it was read)``. ``known``, ``seal``, ``today``: the document read, the
    seal's verdict and the day a verification of a known code was judged on."""
    auth, licence, _type = found
    checks: dict[str, Any] = {}
    refusal = _REFUSED.get(state_of(auth, now))  # the states the holder's pages show, in one rule
    if refusal is None and auth.audience not in verifier.names():
        refusal = ("wrong_audience", "this authorisation is for another organisation or window")
    checks["authorisation"] = {"ok": refusal is None, "detail": refusal[1] if refusal else
                               f"{auth.uses + 1} of {auth.max_uses} uses, until {auth.expires_at.isoformat()}"}
    if refusal:
        return checks, refusal, None
    # The face is read from the document whose digest is checked here (the fields released are
    # exactly the sealed ones).
    document = known.document if known else deps.documents.read(deps.cipher, licence.document_enc)
    licence_result, code = licence_checks(deps, licence, today or issuing.today(), document, seal)
    checks.update(licence_result)
    return checks, (code, f"the licence failed verification: {code}") if code else None, document


def verify_code(store: Store, deps: Deps, verifier: Verifier, raw_code: str, *,
                request_id: str | None = None) -> dict[str, Any]:
    """Verify and record one use; the answer's use is committed before this returns.

    :raise VerificationRefused: (the refusal is recorded, and committed, first)
    """
    code = normalise_code(raw_code)
    now = utcnow()
    record = {"verifier": verifier.sub, "verifier_client": verifier.client_id,
              "verifier_org": ",".join(sorted(verifier.organisations))[:64] or None, "request_id": request_id}

    def refuse(found: Found | None, refusal: tuple[str, str], checks: dict[str, Any]) -> VerificationRefused:
        auth = found[0] if found else None
        store.refuse({**record, "licence_id": auth.licence_id if auth else None, "auth_id": auth.id if auth else None,
                      "purpose": auth.purpose if auth else None, "reason": refusal[0]}, now)
        return VerificationRefused(refusal[0], refusal[1], checks)

    known = store.verified.get(code) if code and store.verified is not None else None
    if known is not None:
        answer = _verify_known(store, deps, verifier, code, known, record, now, refuse)
        if answer is not None:
            return answer
    found = store.lookup(code) if code else None
    if found is None:
        raise refuse(None, ("authorisation_not_found", "no authorisation has this code"), {})
    checks, refusal, document = _decide(deps, verifier, found, now)
    if refusal:
        if store.verified is not None and refusal[0] != "wrong_audience":  # see _verify_known
            store.verified.forget(code)
        raise refuse(found, refusal, checks)
    auth, licence, licence_type = found
    uses = store.take(auth, record, now)
    if uses is None:
        # The authorisation or the licence changed since it was read (another window took the
        # last use, the holder revoked it, the licence was revoked): judged again as it is now.
        again = store.lookup(code)
        if again is None:
            raise refuse(None, ("authorisation_not_found", "no authorisation has this code"), {})
        checks, refusal, _ = _decide(deps, verifier, again, utcnow())
        raise refuse(again, refusal or ("authorisation_used_up", "the authorisation has no uses left"), checks)
    shown = _shown(found, document)
    if store.verified is not None and licence.row_version:
        kept = SimpleNamespace(**{**vars(licence), "document_enc": None})  # its document is kept read
        store.verified.put(code, Verified(auth, kept, licence_type, signature_digest(licence.signature_b64), document,
                                          shown))
    return _answer(shown, checks, auth, uses)


def _verify_known(store: Store, deps: Deps, verifier: Verifier, code: str, known: Verified,
                  record: dict[str, Any], now,
                  refuse: Callable[[Found, tuple[str, str], dict[str, Any]], VerificationRefused]
                  ) -> dict[str, Any] | None:
    """A code whose licence passed every check lately, in one round trip: the document's digest
    and the seal's verdict (cached by the seal client as for any verification) are checked first
    on what that verification read; the statement then takes the use only if every other check
    passes on the rows as they are, the licence and type rows are still the versions read (so the
    licence's document, digest and signature are the ones just checked) and the authorisation's
    shown columns are those read. ``None``, nothing written: something changed, or the code is
    not for this verifier, and the caller verifies it from the start.

    :raise VerificationRefused: the checks, made again on the cached rows with the count, time
        and date of this take, refuse what the statement accepted (a check of those missing from
        the statement: a bug, logged as an error). The use it took stays taken and recorded; the
        refusal is recorded too and is the answer."""
    # The audience is checked here against the one the statement requires the row to still have.
    # A verifier it is not for says nothing about the code: the entry stays for the one it is for
    # (forgetting it would let any window evict it), and the verification from the start refuses.
    if known.audience not in verifier.names():
        return None
    today = issuing.today()
    seal = deps.seal.verify(known.signature_b64, known.document_sm3, signature_sm3=known.signature_sm3)
    taken = None
    if known.document.sm3 == known.document_sm3 and seal.valid:
        taken = store.take_known(code, known, record, now, today)
    if taken is None:
        store.verified.forget(code)
        return None
    found, uses = taken
    checks, refusal, document = _decide(deps, verifier, found, now, known=known, seal=seal, today=today)
    if refusal:  # the statement's conditions are these checks: a difference is a bug, never a 200
        auth, licence, _type = found
        log.error("known_code_check_disagrees_with_statement", refusal=refusal[0], authorisation_id=auth.id,
                  licence_id=licence.id, uses=uses, verifier=verifier.sub, client_id=verifier.client_id,
                  request_id=record["request_id"])
        store.verified.forget(code)
        raise refuse(found, refusal, checks)
    # what the answer shows of the rows is the cached entry's: the statement took the use only
    # while those rows were as read (the answer's members and their objects are only read)
    return _answer(known.shown or _shown(found, document), checks, found[0], uses)


def _shown(found: Found, document: StoredDocument) -> dict[str, Any]:
    """The accepted answer's members that follow from the rows and the document alone."""
    auth, licence, licence_type = found
    face = document.fields
    summary = licence_summary(licence, licence_type)
    # Dates and instants as the licence API writes them (ISO 8601: a validity date is a date,
    # not the midnight GMT an HTTP date would make of it); built once per code (``known.shown``).
    for key in ("valid_from", "valid_until", "issued_at"):
        if summary[key] is not None:
            summary[key] = summary[key].isoformat()
    return {"purpose": auth.purpose, "licence": summary,
            "fields": {name: face[name] for name in auth.fields if name in face},
            "labels": {spec["name"]: spec["label"] for spec in licence_type.fields if spec["name"] in auth.fields}}


def _answer(shown: dict[str, Any], checks: dict[str, Any], auth, uses: int) -> dict[str, Any]:
    return {"valid": True, "checks": checks, **shown,
            "authorisation": {"expires_at": auth.expires_at.isoformat(), "uses": uses, "max_uses": auth.max_uses}}


def licence_summary(row: Licence, licence_type: LicenceType) -> dict[str, Any]:
    """What any verifier may see without a field authorisation."""
    name = row.holder_name
    return {"identifier": row.identifier, "type_code": row.type_code, "type_name": licence_type.name,
            "face_number": row.face_number, "version": row.version, "status": row.status,
            "issuer": {"code": row.issuer_code, "name": row.issuer_name},
            "holder": {"kind": row.holder_kind, "name": name[:1] + "*" * (len(name) - 1),
                       "code": row.holder_code_masked},
            "valid_from": row.valid_from, "valid_until": row.valid_until, "issued_at": row.issued_at}
