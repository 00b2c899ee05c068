"""Seals and their lifecycle: registration, pictures, suspension, resumption, revocation, history.

Flask-free: every function takes a SQLAlchemy session (and the key-encryption key where private
keys are needed) and commits at the end of its use case.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from common.crypto.gm import sm3
from common.db import begin_write, utcnow
from common.errors import Conflict, NotFound, ValidationFailed
from common.values.codes import CreditCode, InvalidCode
from seal import ca, images, ses
from seal.certificates import maker_certificate
from seal.models import ACTIVE, REVOKED, SEAL_KINDS, SUSPENDED, Certificate, Seal, SealEvent, Signature
from seal.private_keys import SEAL_KEY_PURPOSE, key_store, private_key

DEFAULT_SEAL_YEARS = 5


class SealNotFound(NotFound):
    code, title = "seal_not_found", "Seal not found"


class InvalidTransition(Conflict):
    code, title = "seal_status_conflict", "Status change not allowed"


def record_event(session: Session, seal: Seal, action: str, *, actor: str | None, reason: str | None = None,
                 from_status: str | None = None, to_status: str | None = None) -> None:
    """Add a row to the seal's history (the caller commits)."""
    session.add(SealEvent(seal_id=seal.id, action=action, actor=actor, reason=reason,
                          from_status=from_status, to_status=to_status, at=utcnow()))


def _new_es_id(kind: str, now: datetime) -> str:
    """Seal code: ``6101`` (Xi'an) + 2-digit year + 2-digit kind + 8 random digits (16 digits)."""
    kind_number = list(SEAL_KINDS).index(kind) + 1
    return f"6101{now.year % 100:02d}{kind_number:02d}{secrets.randbelow(10**8):08d}"


def create_seal(session: Session, kek: bytes, *, org_code: str, org_name: str, kind: str,
                name: str | None = None, image_png: bytes | None = None, years: int = DEFAULT_SEAL_YEARS,
                actor: str | None = None, font_path: str = "") -> Seal:
    """Register a seal: key pair, signer certificate, picture, ``SESeal`` signed by the maker.

    ``font_path``: the ``SEAL_FONT_PATH`` setting for a generated picture (empty: look for one).
    :raise ValidationFailed: a bad credit code, kind, name or validity. :raise InvalidImage:
    """
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
        image_png = images.generate_seal_png(org_name, label_zh, es_id, font_path=font_path)
        width, height = images.validate_png(image_png)
        generated = True

    maker = maker_certificate(session, kek)
    maker_key = private_key(session, kek, maker.kid)
    key_row = key_store(session, kek).generate(SEAL_KEY_PURPOSE)
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
    record_event(session, seal, "created", actor=actor, to_status=ACTIVE)
    session.commit()
    return seal


def get_seal(session: Session, seal_id: str) -> Seal:
    """:raise SealNotFound:"""
    seal = session.get(Seal, seal_id)
    if seal is None:
        raise SealNotFound(f"no seal {seal_id}")
    return seal


def seal_code(session: Session, seal_id: str) -> str:
    """The seal's esID. :raise SealNotFound:"""
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
    """Signatures made with each seal."""
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
    """Suspend, resume or revoke (terminal; also revokes the signer certificate).

    :raise ValidationFailed: unknown action, or no reason to suspend or revoke.
    :raise SealNotFound: :raise InvalidTransition: not allowed from the seal's status.
    """
    if action not in _TRANSITIONS:
        raise ValidationFailed(f"unknown action {action!r}", code="invalid_action")
    reason = (reason or "").strip() or None
    if action in ("suspend", "revoke") and not reason:
        raise ValidationFailed("a reason is required", code="reason_required", errors={"reason": ["required"]})
    # The status decides: read as last committed, under the write lock on SQLite (where FOR
    # UPDATE is dropped and a read runs before BEGIN) and the row's lock on PostgreSQL.
    begin_write(session)
    seal = session.get(Seal, seal_id, with_for_update=True, populate_existing=True)
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
    record_event(session, seal, action, actor=actor, reason=reason, from_status=previous, to_status=target)
    session.commit()
    return seal


def suspend_seal(session: Session, seal_id: str, *, reason: str, actor: str | None) -> Seal:
    return change_status(session, seal_id, "suspend", reason=reason, actor=actor)


def resume_seal(session: Session, seal_id: str, *, actor: str | None) -> Seal:
    return change_status(session, seal_id, "resume", reason=None, actor=actor)


def revoke_seal(session: Session, seal_id: str, *, reason: str, actor: str | None) -> Seal:
    """Final: the seal signs nothing more and its signer certificate is revoked with it."""
    return change_status(session, seal_id, "revoke", reason=reason, actor=actor)


def replace_image(session: Session, kek: bytes, seal_id: str, image_png: bytes, *, actor: str | None) -> Seal:
    """A new picture means a new ``SESeal`` (the picture is inside the signed seal info).

    :raise InvalidImage: :raise SealNotFound: :raise InvalidTransition: the seal is revoked.
    """
    width, height = images.validate_png(image_png)
    seal = get_seal(session, seal_id)
    if seal.status == REVOKED:
        raise InvalidTransition("a revoked seal cannot be changed")
    maker = maker_certificate(session, kek)
    cert = session.get(Certificate, seal.signer_serial)
    seal_type = SEAL_KINDS[seal.kind][0]
    eseal_der = ses.build_seal(maker_key=private_key(session, kek, maker.kid), maker_cert_der=maker.der,
                               es_id=seal.es_id, name=seal.name, signer_cert_der=cert.der,
                               picture_png=image_png, created=utcnow(), valid_start=seal.valid_start,
                               valid_end=seal.valid_end, seal_type=seal_type)
    # Checked again as last committed, under the lock: a revocation committed while the new seal
    # was being built stands (the maker's first use commits, so no lock could be held across it).
    begin_write(session)
    seal = session.get(Seal, seal_id, with_for_update=True, populate_existing=True)
    if seal.status == REVOKED:
        raise InvalidTransition("a revoked seal cannot be changed")
    seal.eseal_der, seal.eseal_sm3 = eseal_der, sm3(eseal_der).hex()
    seal.image_png, seal.image_width, seal.image_height, seal.image_generated = image_png, width, height, False
    record_event(session, seal, "image_replaced", actor=actor)
    session.commit()
    return seal
