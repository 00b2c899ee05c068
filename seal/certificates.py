"""The node CA's certificates in the database: the seal maker (root) and the signer certificates.

The X.509 building itself is :mod:`seal.ca`; this module creates the maker on first use, reads
trust anchors and certificate status, and caches certificate DER by serial (a certificate
never changes under its serial).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import NotFound, Problem
from seal import ca
from seal.log.tree import serialise_first_use
from seal.models import ACTIVE, Certificate
from seal.private_keys import MAKER_PURPOSE, key_store, private_key

MAKER_NAME = "西安市电子印章制章者 (XSN Seal Maker)"
MAKER_VALIDITY = timedelta(days=365 * 20)


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
    serialise_first_use(session)
    row = session.scalars(query).first()
    if row is not None:
        session.commit()  # release the lock
        return row
    key_row = key_store(session, kek).generate(MAKER_PURPOSE)
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
    """:raise NotFound: no certificate with that serial."""
    row = session.get(Certificate, serial.lower())
    if row is None:
        raise NotFound(f"no certificate with serial {serial}", code="certificate_not_found")
    return row


_certificate_ders: dict[str, bytes] = {}


def certificate_der(session: Session, serial: str) -> bytes:
    """A certificate's DER by serial, cached. :raise Problem: (500) the certificate is missing."""
    der = _certificate_ders.get(serial)
    if der is None:
        der = session.scalar(select(Certificate.der).where(Certificate.serial == serial))
        if der is None:
            raise Problem(f"the signer certificate {serial} is missing", code="certificate_missing", status=500)
        _certificate_ders[serial] = der
    return der
