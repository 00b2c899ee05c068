"""Seal domain logic: the node CA, seals and their lifecycle, grants, signing, verification.

Flask-free: every function takes a SQLAlchemy session (and the key-encryption key where
private keys are needed) and commits at the end of its use case.

Speed of the signing path: decrypted private keys are cached per process by ``kid`` (a
key never changes under a kid; the key store binds the kid into the ciphertext), parsed
certificates are cached by DER (:func:`seal.ca.parse_certificate`), and the seal row is
read without its picture.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from common.crypto.gm import SM2PrivateKey, sm3
from common.crypto.keystore import KeyStore
from common.db import utcnow
from common.errors import Conflict, Forbidden, NotFound, Problem, ValidationFailed
from common.values.codes import CreditCode, InvalidCode

from . import ca, images, ses
from .models import (
    ACTIVE,
    GRANT_CLIENT,
    GRANT_SUBJECT,
    REVOKED,
    SEAL_KINDS,
    SUSPENDED,
    Certificate,
    Grant,
    Seal,
    SealEvent,
    Signature,
    SigningKey,
    new_id,
)

MAKER_PURPOSE = "seal-maker"
SEAL_KEY_PURPOSE = "seal"
MAKER_NAME = "西安市电子印章制章者 (XSN Seal Maker)"
MAKER_VALIDITY = timedelta(days=365 * 20)
DEFAULT_SEAL_YEARS = 5
MAX_PROPERTY_INFO = 255
MAX_IDEMPOTENCY_KEY = 255


class SealNotFound(NotFound):
    code, title = "seal_not_found", "Seal not found"


class SealNotUsable(Problem):
    status, code, title = 409, "seal_not_usable", "The seal cannot sign"


class NotGranted(Forbidden):
    code, title = "seal_not_granted", "This seal is not granted to the caller"


class IdempotencyConflict(Conflict):
    code, title = "idempotency_key_reused", "Idempotency key reused with different parameters"


class InvalidTransition(Conflict):
    code, title = "seal_status_conflict", "Status change not allowed"


class DocumentTooLarge(Problem):
    status, code, title = 413, "document_too_large", "Document too large"


@dataclass(frozen=True)
class Actor:
    """Who is calling, from the verified access token."""

    sub: str
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


# -- per-process caches --------------------------------------------------------------------

_keys: dict[str, SM2PrivateKey] = {}
_keys_lock = threading.Lock()


def private_key(session: Session, kek: bytes, kid: str) -> SM2PrivateKey:
    """The decrypted SM2 key of ``kid``, cached for the life of the process."""
    key = _keys.get(kid)
    if key is None:
        key = KeyStore(session, SigningKey, kek).private_key(kid)
        if not isinstance(key, SM2PrivateKey):
            raise Problem(f"key {kid} is not an SM2 key", code="key_algorithm_unsupported", status=500)
        with _keys_lock:
            _keys[kid] = key
    return key


# -- the node CA -----------------------------------------------------------------------------


def maker_certificate(session: Session, kek: bytes, *, create: bool = True) -> Certificate | None:
    """The active maker (root) certificate, created with its key on first use (committed).

    First use is serialised (the seal log's head lock, then a second look), so two workers
    registering the first seals at the same instant cannot make two makers.
    """
    query = (select(Certificate).where(Certificate.role == "maker", Certificate.status == ACTIVE)
             .order_by(Certificate.created_at.desc()))
    row = session.scalars(query).first()
    if row is not None or not create:
        return row
    from .log import serialise_first_use

    serialise_first_use(session)
    row = session.scalars(query).first()
    if row is not None:
        session.commit()  # release the lock
        return row
    store = KeyStore(session, SigningKey, kek)
    key_row = store.generate(MAKER_PURPOSE)
    key = private_key(session, kek, key_row.kid)
    now = utcnow().replace(microsecond=0)
    der = ca.make_root(key, common_name=MAKER_NAME, not_before=now - timedelta(minutes=5),
                       not_after=now + MAKER_VALIDITY)
    parsed = ca.parse_certificate(der)
    row = Certificate(serial=parsed.serial_hex, role="maker", kid=key_row.kid, der=der,
                      subject=parsed.subject_text[:512], not_before=parsed.not_before,
                      not_after=parsed.not_after, status=ACTIVE)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # pragma: no cover - another worker made one in the same instant
        session.rollback()
        return maker_certificate(session, kek, create=False)
    return row


def trusted_roots(session: Session) -> list[bytes]:
    return list(session.scalars(select(Certificate.der).where(Certificate.role == "maker")))


def certificate_status(session: Session, serial: str) -> Certificate:
    row = session.get(Certificate, serial.lower())
    if row is None:
        raise NotFound(f"no certificate with serial {serial}", code="certificate_not_found")
    return row


# -- seals -----------------------------------------------------------------------------------


def _record(session: Session, seal: Seal, action: str, *, actor: str | None, reason: str | None = None,
            from_status: str | None = None, to_status: str | None = None) -> None:
    session.add(SealEvent(seal_id=seal.id, action=action, actor=actor, reason=reason,
                          from_status=from_status, to_status=to_status, at=utcnow()))


def _new_es_id(kind: str, now: datetime) -> str:
    """Seal code: ``6101`` (Xi'an) + 2-digit year + 2-digit kind + 8 random digits (16 digits)."""
    kind_number = list(SEAL_KINDS).index(kind) + 1
    return f"6101{now.year % 100:02d}{kind_number:02d}{secrets.randbelow(10**8):08d}"


def create_seal(session: Session, kek: bytes, *, org_code: str, org_name: str, kind: str,
                name: str | None = None, image_png: bytes | None = None, years: int = DEFAULT_SEAL_YEARS,
                actor: str | None = None) -> Seal:
    """Register a seal: key pair, signer certificate, picture, ``SESeal`` signed by the maker."""
    try:
        code = CreditCode.parse(org_code).value
    except InvalidCode as exc:
        raise ValidationFailed(exc.message, code=exc.code, errors={"org_code": [exc.message]}) from exc
    if kind not in SEAL_KINDS:
        raise ValidationFailed(f"unknown seal kind {kind!r}", code="invalid_seal_kind",
                               errors={"kind": [f"one of {', '.join(SEAL_KINDS)}"]})
    org_name = (org_name or "").strip()
    if not org_name or len(org_name) > 128:
        raise ValidationFailed("the organisation name is 1–128 characters", code="invalid_org_name",
                               errors={"org_name": ["1–128 characters"]})
    if not 1 <= years <= 20:
        raise ValidationFailed("a seal is valid for 1–20 years", code="invalid_validity",
                               errors={"years": ["1–20"]})
    seal_type, label_zh, _label_en = SEAL_KINDS[kind]
    name = (name or f"{org_name}{label_zh}").strip()[:128]
    now = utcnow().replace(microsecond=0)
    es_id = _new_es_id(kind, now)
    if image_png is not None:
        width, height = images.validate_png(image_png)
        generated = False
    else:
        image_png = images.generate_seal_png(org_name, label_zh, es_id)
        width, height = images.validate_png(image_png)
        generated = True

    maker = maker_certificate(session, kek)
    maker_key = private_key(session, kek, maker.kid)
    key_row = KeyStore(session, SigningKey, kek).generate(SEAL_KEY_PURPOSE)
    seal_key = private_key(session, kek, key_row.kid)
    valid_end = now + timedelta(days=365 * years)
    signer_der = ca.issue_signer(maker_key, maker.der, seal_key.public_key(), common_name=name,
                                 organization=org_name, org_code=code, not_before=now, not_after=valid_end)
    signer = ca.parse_certificate(signer_der)
    eseal = ses.build_seal(maker_key=maker_key, maker_cert_der=maker.der, es_id=es_id, name=name,
                           signer_cert_der=signer_der, picture_png=image_png, created=now, valid_start=now,
                           valid_end=valid_end, seal_type=seal_type)
    seal = Seal(es_id=es_id, org_code=code, org_name=org_name, kind=kind, name=name, status=ACTIVE,
                valid_start=now, valid_end=valid_end, image_png=image_png, image_width=width,
                image_height=height, image_generated=generated, kid=key_row.kid,
                signer_serial=signer.serial_hex, eseal_der=eseal, eseal_sm3=sm3(eseal).hex(), created_by=actor,
                created_at=now)
    session.add(seal)
    session.flush()
    session.add(Certificate(serial=signer.serial_hex, role="signer", seal_id=seal.id, kid=key_row.kid,
                            der=signer_der, subject=signer.subject_text[:512], not_before=signer.not_before,
                            not_after=signer.not_after, status=ACTIVE))
    _record(session, seal, "created", actor=actor, to_status=ACTIVE)
    session.commit()
    return seal


def get_seal(session: Session, seal_id: str) -> Seal:
    seal = session.get(Seal, seal_id)
    if seal is None:
        raise SealNotFound(f"no seal {seal_id}")
    return seal


def seal_code(session: Session, seal_id: str) -> str:
    code = session.scalar(select(Seal.es_id).where(Seal.id == seal_id))
    if code is None:
        raise SealNotFound(f"no seal {seal_id}")
    return code


def list_seals(session: Session, *, org_code: str | None = None, status: str | None = None) -> list[Seal]:
    query = select(Seal).options(defer(Seal.image_png), defer(Seal.eseal_der)).order_by(Seal.created_at)
    if org_code:
        query = query.where(Seal.org_code == org_code.strip().upper())
    if status:
        query = query.where(Seal.status == status)
    return list(session.scalars(query))


def usage_counts(session: Session, seal_ids: list[str]) -> dict[str, int]:
    if not seal_ids:
        return {}
    rows = session.execute(select(Signature.seal_id, func.count()).where(Signature.seal_id.in_(seal_ids))
                           .group_by(Signature.seal_id))
    counts = dict.fromkeys(seal_ids, 0)
    counts.update({seal_id: count for seal_id, count in rows})
    return counts


def history(session: Session, seal_id: str) -> list[SealEvent]:
    return list(session.scalars(select(SealEvent).where(SealEvent.seal_id == seal_id).order_by(SealEvent.id)))


_TRANSITIONS = {
    "suspend": ({ACTIVE}, SUSPENDED),
    "resume": ({SUSPENDED}, ACTIVE),
    "revoke": ({ACTIVE, SUSPENDED}, REVOKED),
}


def change_status(session: Session, seal_id: str, action: str, *, reason: str | None,
                  actor: str | None) -> Seal:
    """Suspend, resume or revoke (terminal; also revokes the signer certificate)."""
    if action not in _TRANSITIONS:
        raise ValidationFailed(f"unknown action {action!r}", code="invalid_action")
    reason = (reason or "").strip() or None
    if action in ("suspend", "revoke") and not reason:
        raise ValidationFailed("a reason is required", code="reason_required", errors={"reason": ["required"]})
    seal = session.scalars(select(Seal).where(Seal.id == seal_id).with_for_update()).first()
    if seal is None:
        raise SealNotFound(f"no seal {seal_id}")
    allowed, target = _TRANSITIONS[action]
    if seal.status not in allowed:
        raise InvalidTransition(f"cannot {action} a seal that is {seal.status}")
    now = utcnow()
    previous = seal.status
    seal.status, seal.status_reason, seal.status_changed_at = target, reason, now
    if target == REVOKED:
        cert = session.get(Certificate, seal.signer_serial)
        if cert is not None and cert.status != REVOKED:
            cert.status, cert.revoked_at, cert.revocation_reason = REVOKED, now, reason
    _record(session, seal, action, actor=actor, reason=reason, from_status=previous, to_status=target)
    session.commit()
    return seal


def replace_image(session: Session, kek: bytes, seal_id: str, image_png: bytes, *, actor: str | None) -> Seal:
    """A new picture means a new ``SESeal`` (the picture is inside the signed seal info)."""
    width, height = images.validate_png(image_png)
    seal = get_seal(session, seal_id)
    if seal.status == REVOKED:
        raise InvalidTransition("a revoked seal cannot be changed")
    maker = maker_certificate(session, kek)
    cert = session.get(Certificate, seal.signer_serial)
    seal_type = SEAL_KINDS[seal.kind][0]
    seal.eseal_der = ses.build_seal(maker_key=private_key(session, kek, maker.kid), maker_cert_der=maker.der,
                                    es_id=seal.es_id, name=seal.name, signer_cert_der=cert.der,
                                    picture_png=image_png, created=utcnow(), valid_start=seal.valid_start,
                                    valid_end=seal.valid_end, seal_type=seal_type)
    seal.eseal_sm3 = sm3(seal.eseal_der).hex()
    seal.image_png, seal.image_width, seal.image_height, seal.image_generated = image_png, width, height, False
    _record(session, seal, "image_replaced", actor=actor)
    session.commit()
    return seal


# -- grants ----------------------------------------------------------------------------------


def add_grant(session: Session, seal_id: str, grantee_type: str, grantee: str, *, actor: str | None) -> Grant:
    if grantee_type not in (GRANT_CLIENT, GRANT_SUBJECT):
        raise ValidationFailed("grantee_type is client or subject", code="invalid_grantee_type")
    grantee = (grantee or "").strip()
    if not grantee or len(grantee) > 255:
        raise ValidationFailed("grantee is 1–255 characters", code="invalid_grantee")
    seal = get_seal(session, seal_id)
    existing = session.scalars(select(Grant).where(Grant.seal_id == seal.id, Grant.grantee_type == grantee_type,
                                                   Grant.grantee == grantee)).first()
    if existing is not None:
        return existing
    grant = Grant(seal_id=seal.id, grantee_type=grantee_type, grantee=grantee, granted_by=actor)
    session.add(grant)
    _record(session, seal, "grant_added", actor=actor, reason=f"{grantee_type}:{grantee}")
    session.commit()
    return grant


def remove_grant(session: Session, seal_id: str, grant_id: int, *, actor: str | None) -> None:
    grant = session.get(Grant, grant_id)
    if grant is None or grant.seal_id != seal_id:
        raise NotFound(f"no grant {grant_id} on seal {seal_id}", code="grant_not_found")
    seal = get_seal(session, seal_id)
    session.delete(grant)
    _record(session, seal, "grant_removed", actor=actor, reason=f"{grant.grantee_type}:{grant.grantee}")
    session.commit()


def list_grants(session: Session, seal_id: str) -> list[Grant]:
    return list(session.scalars(select(Grant).where(Grant.seal_id == seal_id).order_by(Grant.id)))


def _granted_to(sub, client_id):
    """The grant rows that let ``sub`` signing through ``client_id`` use a seal: a subject grant
    for that person (whatever the client) or a client grant for that client. Values or bind
    parameters; a missing client (None) matches no client grant, grantees being non-empty."""
    return or_(and_(Grant.grantee_type == GRANT_SUBJECT, Grant.grantee == sub),
               and_(Grant.grantee_type == GRANT_CLIENT, Grant.grantee == client_id))


def granted_seals(session: Session, actor: Actor) -> list[Seal]:
    """Seals the caller may sign with (granted to its client or to its subject)."""
    ids = select(Grant.seal_id).where(_granted_to(actor.sub, actor.client_id))
    return list(session.scalars(select(Seal).options(defer(Seal.image_png), defer(Seal.eseal_der))
                                .where(Seal.id.in_(ids)).order_by(Seal.created_at)))


# -- signing ---------------------------------------------------------------------------------


@dataclass
class SignResult:
    signature: Signature
    replayed: bool
    seal_code: str | None = None  # the seal's esID, known to the signing path (saves a query)


def _request_hash(seal_id: str, digest: bytes, property_info: str) -> str:
    body = json.dumps({"seal_id": seal_id, "digest": digest.hex(), "property_info": property_info},
                      sort_keys=True, separators=(",", ":"))
    return sm3(body.encode()).hex()


def _existing(session: Session, scope: str, key: str) -> Signature | None:
    return session.scalars(select(Signature).where(Signature.idempotency_scope == scope,
                                                   Signature.idempotency_key == key)).first()


def _replay(existing: Signature, request_hash: str, seal_code: str | None = None) -> SignResult:
    if existing.request_hash != request_hash:
        raise IdempotencyConflict("this idempotency key was used for a different signing request")
    return SignResult(existing, True, seal_code)


# Everything the signing path reads, in one statement: the seal (without its picture), whether
# it is granted to the caller's subject or client, and an earlier signature under the same
# idempotency key (the unique (scope, key) constraint's index answers that). Built once:
# executing a prepared Core statement skips SQLAlchemy's per-call construction.
_SIGN_CONTEXT = (
    select(Seal.id, Seal.es_id, Seal.org_code, Seal.status, Seal.status_reason, Seal.valid_start, Seal.valid_end,
           Seal.kid, Seal.signer_serial, Seal.eseal_sm3,
           exists().where(Grant.seal_id == Seal.id, _granted_to(bindparam("sub"), bindparam("client_id")))
           .label("granted"),
           select(Signature.id).where(Signature.idempotency_scope == bindparam("scope"),
                                      Signature.idempotency_key == bindparam("idempotency_key"))
           .scalar_subquery().label("existing_id"))
    .where(Seal.id == bindparam("seal_id"))
)
_INSERT_SIGNATURE = insert(Signature.__table__)
_SIGNATURES = Signature.__table__
_SET_LOG_INDEX = (update(_SIGNATURES).where(_SIGNATURES.c.id == bindparam("row_id"))
                  .values(log_index=bindparam("log_index")))

# Per process: the SES_Signature material of each seal version (see ses.SigningMaterial), keyed
# by the SM3 of the SESeal DER and the signer certificate's serial, so the seal DER (tens of KiB
# with its picture) is read once per version, not per signature. A new SESeal (new picture) has
# a new digest, hence a new entry; the DER read on a miss is checked against the digest.
_materials: dict[tuple[str, str], ses.SigningMaterial] = {}
_MAX_MATERIALS = 256
_ESEAL_DER = select(Seal.eseal_der).where(Seal.id == bindparam("seal_id"))


def _material(session: Session, seal: Any) -> ses.SigningMaterial:
    key = (seal.eseal_sm3, seal.signer_serial)
    material = _materials.get(key)
    if material is None:
        der = session.connection().execute(_ESEAL_DER, {"seal_id": seal.id}).scalar_one()
        if sm3(der).hex() != seal.eseal_sm3:
            raise Problem(f"the stored SESeal of seal {seal.es_id} does not match its digest",
                          code="seal_integrity_error", status=500)
        material = ses.SigningMaterial(der, _signer_cert_der(session, seal.signer_serial))
        with _keys_lock:
            if len(_materials) >= _MAX_MATERIALS:
                _materials.clear()
            _materials[key] = material
    return material


def sign(session: Session, kek: bytes, seal_id: str, *, actor: Actor, digest: bytes,
         property_info: str = ses.DEFAULT_PROPERTY_INFO, idempotency_key: str | None = None,
         request_id: str | None = None, append_event: Any = None) -> SignResult:
    """Sign a document digest with a seal, log the event and store the signature (committed).

    Same idempotency key (per client, or per subject without a client) with the same
    parameters returns the first result; with different parameters it is refused (409).

    Statements: one read (seal, grant, idempotency), one INSERT of the signature, the log append
    (one UPDATE ... RETURNING, one INSERT of the leaf, one executemany of the nodes, and one
    node read when the leaf completes a subtree), one UPDATE of the signature's log index, the
    commit.
    """
    if len(digest) != 32:
        raise ValidationFailed("the digest is a 32-byte SM3 digest (64 hex digits)", code="invalid_digest",
                               errors={"digest": ["64 hex digits"]})
    if not property_info or len(property_info) > MAX_PROPERTY_INFO or not property_info.isascii() \
            or not property_info.isprintable():
        raise ValidationFailed("property_info is 1–255 printable ASCII characters", code="invalid_property_info",
                               errors={"property_info": ["1–255 printable ASCII characters"]})
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed("Idempotency-Key is 1–255 characters", code="invalid_idempotency_key")
    request_hash = _request_hash(seal_id, digest, property_info)
    scope = f"client:{actor.client_id}" if actor.client_id else f"sub:{actor.sub}"

    connection = session.connection()
    seal = connection.execute(_SIGN_CONTEXT, {"seal_id": seal_id, "sub": actor.sub, "client_id": actor.client_id,
                                              "scope": scope, "idempotency_key": idempotency_key}).first()
    if seal is None:
        if idempotency_key is not None:  # a replay names its seal, but answer it as before
            existing = _existing(session, scope, idempotency_key)
            if existing is not None:
                return _replay(existing, request_hash)
        raise SealNotFound(f"no seal {seal_id}")
    if seal.existing_id is not None:
        return _replay(session.get(Signature, seal.existing_id), request_hash, seal.es_id)
    if not seal.granted:
        raise NotGranted(f"seal {seal.es_id} is not granted to client {actor.client_id!r} or subject {actor.sub!r}")
    now = utcnow().replace(microsecond=0)
    if seal.status != ACTIVE:
        raise SealNotUsable(f"the seal is {seal.status}: {seal.status_reason or 'no reason given'}",
                            code=f"seal_{seal.status}")
    if not seal.valid_start <= now <= seal.valid_end:
        raise SealNotUsable("the seal is outside its validity window", code="seal_expired")

    material = _material(session, seal)
    der, der_digest = material.sign(private_key(session, kek, seal.kid), time_info=now, data_hash=digest,
                                    property_info=property_info)
    signature_digest = der_digest.hex()
    values = {"id": new_id(), "seal_id": seal.id, "signer": actor.sub, "client_id": actor.client_id,
              "idempotency_scope": scope if idempotency_key else None, "idempotency_key": idempotency_key,
              "request_hash": request_hash, "document_digest": digest.hex(), "property_info": property_info,
              "signature_der": der, "signature_digest": signature_digest, "signed_at": now,
              "log_index": None, "request_id": request_id, "note": None}
    try:
        # The signature row goes in before the log append: the append holds the log head's row
        # lock (PostgreSQL) until the commit, so everything done before it is outside the one
        # section that all signers take in turn; an idempotency race fails here, before it.
        connection.execute(_INSERT_SIGNATURE, values)
        if append_event is not None:
            event = {"type": "sign", "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "seal_id": seal.id,
                     "seal_code": seal.es_id, "org_code": seal.org_code, "signer": actor.sub,
                     "client_id": actor.client_id, "document_digest": values["document_digest"],
                     "signature_digest": signature_digest, "request_id": request_id}
            values["log_index"] = append_event(session, event, ses_der=der)
            connection.execute(_SET_LOG_INDEX, {"row_id": values["id"], "log_index": values["log_index"]})
        session.commit()
    except IntegrityError:
        session.rollback()
        if idempotency_key is not None:
            existing = _existing(session, scope, idempotency_key)
            if existing is not None:  # a concurrent request with the same key won the race
                return _replay(existing, request_hash, seal.es_id)
        raise
    return SignResult(Signature(**values), False, seal.es_id)


_signer_certs: dict[str, bytes] = {}


def _signer_cert_der(session: Session, serial: str) -> bytes:
    """A certificate's DER by serial (a certificate never changes under its serial)."""
    der = _signer_certs.get(serial)
    if der is None:
        der = session.scalar(select(Certificate.der).where(Certificate.serial == serial))
        if der is None:
            raise Problem(f"the signer certificate {serial} is missing", code="certificate_missing", status=500)
        _signer_certs[serial] = der
    return der


def get_signature(session: Session, signature_id: str) -> Signature:
    row = session.get(Signature, signature_id)
    if row is None:
        raise NotFound(f"no signature {signature_id}", code="signature_not_found")
    return row


# -- verification ----------------------------------------------------------------------------


def verify(session: Session, ses_der: bytes, *, document_digest: bytes | None,
           at: datetime | None = None) -> ses.VerificationReport:
    """All five checks, with this node's makers as trust anchors and its status records.

    :raise SESFormatError: the DER is not an acceptable ``SES_Signature`` (problem+json).
    """
    parsed = ses.parse_signature(ses_der)
    es_id = parsed["toSign"]["eseal"]["eSealInfo"]["esID"].native
    signer_serial = format(ca.parse_certificate(parsed["cert"].native).serial, "x")
    maker_der = parsed["toSign"]["eseal"]["cert"].native
    roots = trusted_roots(session)
    root = maker_der if maker_der in roots else (roots[0] if roots else None)
    seal_fact = cert_fact = None
    seal = session.scalars(select(Seal).options(defer(Seal.image_png), defer(Seal.eseal_der))
                           .where(Seal.es_id == es_id)).first()
    if seal is not None:
        seal_fact = ses.StatusFact(seal.status, seal.status_changed_at, seal.status_reason)
    cert = session.get(Certificate, signer_serial)
    if cert is not None:
        cert_fact = ses.StatusFact(cert.status, cert.revoked_at, cert.revocation_reason)
    report = ses.verify_ses_signature(ses_der, document_digest, trusted_root_cert_der=root, at=at,
                                      seal_status=seal_fact, signer_cert_status=cert_fact)
    if root is None:
        report.notes.append("this node has no maker certificate yet: nothing to anchor trust")
    elif seal is None:
        report.notes.append("the seal is not registered at this node: its status is unknown here")
    return report


def decode_base64(value: str, field_name: str, *, limit: int) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"{field_name} is not base64", code="invalid_base64",
                               errors={field_name: ["not base64"]}) from exc
    if len(data) > limit:
        raise DocumentTooLarge(f"{field_name} is {len(data)} bytes; the limit is {limit}", limit=limit)
    return data
