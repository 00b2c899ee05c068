"""Issuing a licence: check, build the canonical document, seal it, make it visible.

**The canonical document** is the licence's metadata (GB/T 36903 practice) and face as one
JSON object serialised by RFC 8785 (JSON Canonicalization Scheme: sorted keys, no
whitespace, ECMAScript number and string forms, UTF-8); its SM3 digest is what the
department's seal signs (``dataHash`` of the ``SES_Signature``). Members::

    {"format": "urn:xsn:licence:v1", "identifier", "type_code", "type_name", "face_number",
     "version", "supersedes": <identifier or null>, "holder": {"kind", "name", "code",
     "code_type": "111" (citizen ID) | "001" (credit code)}, "issuer": {"code", "name"},
     "issue_date", "valid_from", "valid_until": <date or null>, "fields": {<face>}}

Dates are ISO ``YYYY-MM-DD`` (Asia/Shanghai calendar). Anyone holding the document and the
signature can check it with the seal node's ``/verify`` or offline with the seal CLI.

**Failure policy**: bad input is refused before anything is written. A valid request first
commits the licence as ``pending`` (invisible everywhere), then asks the seal node to sign
with an idempotency key derived from the licence id, then marks it valid. If the seal node
fails, only the pending row remains; the same request with the same ``Idempotency-Key``
resumes it (same identifier, same signing key, so never two signatures or two licences).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import rfc8785
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.crypto.pii import PiiCipher
from common.db import utcnow
from common.errors import Problem, ValidationFailed
from common.http import RETRY_AFTER_MAX
from common.peers.seal_client import SealClient
from common.values.codes import InvalidCode, LicenseIdentifier, LicenseIdentifiers

from . import catalogue, notifier
from .documents import DocumentCache
from .holders import holder_index, parse_holder_code, protect_code
from .issuers import Issuer, check_issuer
from .models import PENDING, PERSON, VALID, Counter, HolderLink, Licence, LicenceEvent, LicenceType, new_id

CHINA = timezone(timedelta(hours=8), "CST")
DOCUMENT_FORMAT = "urn:xsn:licence:v1"
CODE_TYPES = {"person": "111", "organisation": "001"}


class InvalidHolder(ValidationFailed):
    code, title = "invalid_holder", "The holder is invalid"


class IdempotencyKeyReused(Problem):
    status, code, title = 422, "idempotency_key_reused", "The Idempotency-Key was used for another request"


@dataclass(frozen=True)
class Deps:
    cipher: PiiCipher
    seal: SealClient
    documents: DocumentCache = field(default_factory=DocumentCache)  # online verification's reads
    # The seal client's HTTP_RETRIES and HTTP_RETRY_AFTER_MAX (its timeout is ``seal.timeout``):
    # how long one sealing can last is derived from them (lifecycle.sealing_bound).
    seal_retries: int = 2
    seal_retry_after_max: float = RETRY_AFTER_MAX


@dataclass
class IssueRequest:
    type_code: str
    holder_code: Any
    holder_name: Any
    fields: Any
    valid_from: date | None = None
    valid_until: date | None = None
    contact: list[dict[str, str]] = field(default_factory=list)  # extra notification recipients
    idempotency_key: str | None = None


def today() -> date:
    return datetime.now(CHINA).date()


def next_values(session: Session, name: str, count: int = 1) -> int:
    """Take ``count`` values of a named counter inside the caller's transaction (its row lock
    orders concurrent callers); the first of them (values start at 1)."""
    statement = (update(Counter).where(Counter.name == name).values(value=Counter.value + count)
                 .returning(Counter.value).execution_options(synchronize_session=False))
    for _ in range(3):
        value = session.execute(statement).scalar()
        if value is not None:
            return int(value) - count + 1
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=count))
            return 1
        except IntegrityError:
            continue  # another transaction created it first: take from theirs
    raise RuntimeError(f"counter {name} could not be incremented")


def serial_counter(licence_type: LicenceType, issuer_code: str, year: int) -> str:
    return f"serial:{licence_type.code}:{issuer_code}:{year}"


@dataclass(frozen=True)
class Numbers:
    """A new licence's serial number and status-list index, taken from the counters."""

    serial: str
    status_index: int

    def following(self, count: int) -> list[Numbers]:
        """This and the next ``count - 1`` numbers (what :func:`take_numbers` took together)."""
        year, first = self.serial[:4], int(self.serial[4:])
        return [Numbers(f"{year}{first + i:08d}", self.status_index + i) for i in range(count)]


def take_numbers(session: Session, licence_type: LicenceType, issuer_code: str, count: int) -> list[Numbers]:
    year = today().year
    first_serial = next_values(session, serial_counter(licence_type, issuer_code, year), count)
    first_index = next_values(session, "status_index", count) - 1
    return Numbers(f"{year}{first_serial:08d}", first_index).following(count)


def canonical(document: dict[str, Any]) -> bytes:
    """RFC 8785 (JCS) bytes of the document.

    Licence documents hold only strings, integers, null, booleans, objects and arrays. For such
    a document whose keys are ASCII and whose integers are within
    2**53 - 1, JCS is exactly ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``: the same string escapes (quote, backslash, the five short control
    escapes, other controls as lower-case u00xx escapes, nothing else), the same key order
    (UTF-16 code units order ASCII keys as code points do), the same integers. The C encoder is
    used then (about 17 µs a licence document against 47 µs); anything else (lone surrogates
    included: UTF-8 refuses them) goes to the ``rfc8785`` package. ``tests/licenses/
    test_issuing.py`` checks that both agree.
    """
    if _plain(document):
        try:
            return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(document)


_SAFE_INT = 2**53 - 1  # the rfc8785 package refuses integers beyond (not exact as doubles)


def _plain(value: Any) -> bool:
    kind = type(value)  # exact types: anything else (subclasses included) takes the rfc8785 path
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


@dataclass(frozen=True)
class Checked:
    """A request that passed every check: what a licence row is built from."""

    licence_type: LicenceType
    holder_code: str
    holder_name: str
    face: dict[str, Any]
    valid_from: date
    valid_until: date | None
    request_hash: str


def check_request(session: Session, issuer: Issuer, req: IssueRequest) -> Checked:
    """Every check of an issuance, nothing written. :raise Problem: the first thing wrong."""
    licence_type = catalogue.get_type(session, req.type_code)
    check_issuer(issuer, licence_type)
    try:
        code = parse_holder_code(licence_type.holder_kind, req.holder_code)
    except InvalidCode as exc:
        raise InvalidHolder(f"holder_code: {exc.message}", code=exc.code if exc.code != "invalid_holder_code"
                            else "invalid_holder", errors={"holder_code": [exc.message]}) from None
    name = req.holder_name.strip() if isinstance(req.holder_name, str) else ""
    if not 1 <= len(name) <= 128:
        raise InvalidHolder("holder_name is 1..128 characters", errors={"holder_name": ["1..128 characters"]})
    face = catalogue.validate_face(licence_type, req.fields)
    return complete(licence_type, code, name, face, req.valid_from, req.valid_until)


def complete(licence_type: LicenceType, holder_code: str, holder_name: str, face: dict[str, Any],
             valid_from: date | None, valid_until: date | None, *, day: date | None = None) -> Checked:
    """The rest of a check, from a holder code, name and face already checked against this type:
    the validity (from the day the licence is issued, ``day`` or today, unless the request names a
    day; the type's term unless it names an end) and the request hash.
    :raise ValidationFailed: invalid_validity"""
    valid_from = valid_from or day or today()
    if valid_until is None and licence_type.validity_days:
        valid_until = valid_from + timedelta(days=licence_type.validity_days - 1)
    if valid_until is not None and valid_until < valid_from:
        raise ValidationFailed("valid_until is before valid_from", code="invalid_validity",
                               errors={"valid_until": ["before valid_from"]})
    digest_input = {"type": licence_type.code, "holder": holder_code, "name": holder_name, "fields": face,
                    "valid_from": valid_from.isoformat(), "valid_until": valid_until and valid_until.isoformat()}
    # The request hash is internal (idempotency), so plain sorted JSON will do; RFC 8785 is
    # kept for the published document.
    request_hash = sm3(json.dumps(digest_input, sort_keys=True, ensure_ascii=False).encode()).hex()
    return Checked(licence_type, holder_code, holder_name, face, valid_from, valid_until, request_hash)


def build_document(row: Licence, licence_type: LicenceType, holder_code: str, face: dict[str, Any],
                   supersedes: str | None, issue_date: date | None = None) -> dict[str, Any]:
    return {"format": DOCUMENT_FORMAT, "identifier": row.identifier, "type_code": licence_type.code,
            "type_name": licence_type.name, "face_number": row.face_number, "version": row.version,
            "supersedes": supersedes,
            "holder": {"kind": row.holder_kind, "name": row.holder_name, "code": holder_code,
                       "code_type": CODE_TYPES[row.holder_kind]},
            "issuer": {"code": row.issuer_code, "name": row.issuer_name},
            "issue_date": (issue_date or today()).isoformat(), "valid_from": row.valid_from.isoformat(),
            "valid_until": row.valid_until.isoformat() if row.valid_until else None, "fields": face}


def new_pending(session: Session, deps: Deps, issuer: Issuer, checked: Checked, *,
                idempotency_key: str | None = None, previous: Licence | None = None) -> Licence:
    """A pending licence row (identifier, face number, document), added; the caller commits."""
    numbers = take_numbers(session, checked.licence_type, issuer.code, 1)[0]
    row = Licence(**pending_values(deps, issuer, checked, numbers, idempotency_key=idempotency_key,
                                   previous=previous))
    session.add(row)
    return row


def pending_values(deps: Deps, issuer: Issuer, checked: Checked, numbers: Numbers, *,
                   idempotency_key: str | None = None, previous: Licence | None = None,
                   identifiers: LicenseIdentifiers | None = None, issue_date: date | None = None) -> dict[str, Any]:
    """A pending licence's columns (bulk issuance inserts a chunk's in one statement, without
    building ORM objects). ``identifiers``: of this type and issuer, when the caller makes many;
    ``issue_date``: the document's (today unless given: bulk issuance rebuilds a chunk's documents
    exactly as they were first signed)."""
    licence_type = checked.licence_type
    if previous is None:
        identifiers = identifiers or LicenseIdentifiers(licence_type.code, issuer.code)
        identifier = identifiers.build(numbers.serial, 1)
        face_number = f"{licence_type.face_prefix}{numbers.serial}"
    else:
        identifier = LicenseIdentifier(previous.identifier).next_version()
        face_number = previous.face_number
    index, code_enc, masked = protect_code(deps.cipher, licence_type.holder_kind, checked.holder_code)
    values = dict(id=new_id(), identifier=identifier.value, type_code=licence_type.code, version=identifier.version,
                  face_number=face_number, issuer_code=issuer.code, issuer_name=issuer.name,
                  holder_kind=licence_type.holder_kind, holder_name=checked.holder_name, holder_index=index,
                  holder_code_enc=code_enc, holder_code_masked=masked,
                  fields_enc=deps.cipher.encrypt("fields", json.dumps(checked.face, ensure_ascii=False)),
                  valid_from=checked.valid_from, valid_until=checked.valid_until, status=PENDING,
                  status_index=numbers.status_index, previous_id=previous.id if previous else None,
                  request_hash=checked.request_hash,
                  idempotency_scope=f"{issuer.code}:{issuer.actor}" if idempotency_key else None,
                  idempotency_key=idempotency_key, issued_by=issuer.actor)
    document = canonical(build_document(SimpleNamespace(**values), licence_type, checked.holder_code, checked.face,
                                        previous.identifier if previous else None, issue_date))
    values["document_enc"] = deps.cipher.encrypt("document", document.decode())
    values["document_sm3"] = sm3(document).hex()
    return values


def mark_sealed(session: Session, row: Licence, signature, *, actor: str, client_id: str | None,
                action: str = "issue", contact: list[dict[str, str]] | None = None) -> None:
    """Store the seal's signature and make the licence visible (the caller commits)."""
    for column, value in sealed_values(signature, utcnow()).items():
        setattr(row, column, value)
    session.add(LicenceEvent(**issued_event(row.id, action, actor, client_id)))
    licence_type = session.get(LicenceType, row.type_code)
    tell_issued(session, licence_type.name if licence_type else row.type_code, row,
                recipients_for(session, row.holder_index) + list(contact or []))


def sealed_values(signature, now) -> dict[str, Any]:
    """The columns a pending licence gets once sealed: its signature, and visible (valid)."""
    return {"seal_id": signature.seal_id, "signature_id": signature.signature_id,
            "signature_b64": signature.signature_b64, "signed_at": signature.signed_at,
            "status": VALID, "issued_at": now}


def issued_event(licence_id: str, action: str, actor: str, client_id: str | None) -> dict[str, Any]:
    """The lifecycle event of a licence made valid by its seal (pending -> valid)."""
    return {"licence_id": licence_id, "action": action, "from_status": PENDING, "to_status": VALID,
            "actor": actor, "client_id": client_id}


def tell_issued(session: Session, licence_name: str, row: Licence, recipients: list[dict[str, str]]) -> None:
    """The holders' "licence issued" message, into the outbox with the change (the caller
    commits); nothing when nobody is known to hold the licence."""
    notifier.enqueue(session, "licence_issued", {"licence_name": licence_name, "face_number": row.face_number,
                                                 "issuer": row.issuer_name}, recipients)


def recipients_for(session: Session, index: str) -> list[dict[str, str]]:
    return recipients_by_index(session, [index]).get(index, [])


def recipients_by_index(session: Session, indexes: list[str]) -> dict[str, list[dict[str, str]]]:
    """The people known to hold each blind index (one query for a whole batch)."""
    found: dict[str, list[dict[str, str]]] = {}
    for sub, index in session.execute(select(HolderLink.sub, HolderLink.holder_index)
                                      .where(HolderLink.holder_index.in_(set(indexes)))):
        found.setdefault(index, []).append({"subject": sub})
    return found


def seal_pending(session: Session, deps: Deps, row: Licence, *, actor: str, client_id: str | None,
                 action: str = "issue", contact: list[dict[str, str]] | None = None) -> Licence:
    """Sign a committed pending licence and make it valid; commits. :raise SealUnavailable:"""
    licence_type = session.get(LicenceType, row.type_code)
    seal_id = deps.seal.seal_for(row.issuer_code, licence_type.seal_kind)
    signature = deps.seal.sign(seal_id, row.document_sm3, idempotency_key=f"licence:{row.id}",
                               property_info=row.identifier)
    mark_sealed(session, row, signature, actor=actor, client_id=client_id, action=action, contact=contact)
    session.commit()
    return row


def issue(session: Session, deps: Deps, issuer: Issuer, req: IssueRequest) -> tuple[Licence, bool]:
    """Issue (or resume, or replay) a licence; ``(licence, replayed)``.

    :raise Problem: a check failed (nothing written); :raise SealUnavailable: the licence stays
        pending and invisible, the same request with the same idempotency key completes it.
    """
    checked = check_request(session, issuer, req)
    row = _earlier(session, issuer, req, checked)
    if row is not None and row.status != PENDING:
        return row, True
    # Find the seal before writing anything: a department without a seal is a refusal, not a pending row.
    deps.seal.seal_for(issuer.code, checked.licence_type.seal_kind)
    if row is None:
        row = new_pending(session, deps, issuer, checked, idempotency_key=req.idempotency_key)
        try:
            session.commit()
        except IntegrityError:
            # A concurrent request with the same key committed first: continue with its licence.
            session.rollback()
            row = _earlier(session, issuer, req, checked)
            if row is None:
                raise
            if row.status != PENDING:
                return row, True
    return seal_pending(session, deps, row, actor=issuer.actor, client_id=issuer.client_id,
                        contact=req.contact), False


def _earlier(session: Session, issuer: Issuer, req: IssueRequest, checked: Checked) -> Licence | None:
    """The licence an earlier request with this idempotency key made. :raise IdempotencyKeyReused:"""
    if not req.idempotency_key:
        return None
    row = session.scalars(select(Licence).where(Licence.idempotency_scope == f"{issuer.code}:{issuer.actor}",
                                                Licence.idempotency_key == req.idempotency_key)).first()
    if row is not None and row.request_hash != checked.request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different licence")
    return row


def link_holder(session: Session, cipher: PiiCipher, sub: str, codes: list[tuple[str, str]]) -> list[str]:
    """Remember which holder codes a logged-in person has (for notifications); their blind indexes."""
    indexes = [holder_index(cipher, kind, code) for kind, code in codes]
    known = set(session.scalars(select(HolderLink.holder_index).where(HolderLink.sub == sub)))
    for index in indexes:
        if index not in known:
            session.add(HolderLink(sub=sub, holder_index=index))
    if set(indexes) - known:
        session.commit()
    return indexes


def document_of(deps: Deps, row: Licence) -> bytes:
    return deps.cipher.decrypt("document", row.document_enc).encode()


def face_of(deps: Deps, row: Licence) -> dict[str, Any]:
    return json.loads(deps.cipher.decrypt("fields", row.fields_enc))


def holder_code_of(deps: Deps, row: Licence) -> str:
    return deps.cipher.decrypt("holder_code", row.holder_code_enc)


__all__ = ["PERSON", "Deps", "IssueRequest", "Issuer", "issue"]
