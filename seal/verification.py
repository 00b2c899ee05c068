"""Verifying an ``SES_Signature`` at this node: the five GB/T 38540 checks with its trust anchors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from seal import ca, ses, ses_verify
from seal.certificates import trusted_roots
from seal.models import Certificate, Seal


def verify(session: Session, ses_der: bytes, *, document_digest: bytes | None,
           at: datetime | None = None, end_reads: bool = False) -> ses_verify.VerificationReport:
    """All five checks, with this node's makers as trust anchors and its status records.

    ``end_reads``: roll the session's transaction back once those records are read (a caller
    whose session only read, such as the ``/verify`` view), so its pooled connection goes back
    before the checks' cryptography (~5 ms) instead of being held through it: with 16 threads
    per worker (``seal.processes``), verifications holding connections through it overflowed
    the pool (5 + 10), which opened and closed a connection, and a backend, per overflow.

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
        seal_fact = ses_verify.StatusFact(seal.status, seal.status_changed_at, seal.status_reason)
    cert = session.get(Certificate, signer_serial)
    if cert is not None:
        cert_fact = ses_verify.StatusFact(cert.status, cert.revoked_at, cert.revocation_reason)
    if end_reads:
        session.rollback()
    report = ses_verify.verify_ses_signature(ses_der, document_digest, trusted_root_cert_der=root, at=at,
                                      seal_status=seal_fact, signer_cert_status=cert_fact)
    if root is None:
        report.notes.append("this node has no maker certificate yet: nothing to anchor trust")
    elif seal is None:
        report.notes.append("the seal is not registered at this node: its status is unknown here")
    return report
