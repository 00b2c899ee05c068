"""Verification at this node (:mod:`seal.verification`) of signatures made before a revocation
or while suspended.
"""

from __future__ import annotations

from datetime import timedelta

from common.crypto.gm import sm3
from seal import seals, verification
from seal.models import Seal
from tests.seal.domain import (
    DIGEST,
    LICENSES,
    sign,
)


def test_verification_of_a_signature_made_before_revocation(db, kek, seal):
    signed = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST).signature
    before = verification.verify(db, signed.signature_der, document_digest=DIGEST)
    assert before.valid and before.complete, before.to_dict()

    seals.change_status(db, seal.id, "revoke", reason="单位注销", actor="a")
    after = verification.verify(db, signed.signature_der, document_digest=DIGEST)
    assert after.valid and after.complete, after.to_dict()
    for name, what in (("seal", "seal"), ("signer_certificate", "signer certificate")):
        detail = after.checks[name].detail
        assert after.checks[name].ok and f"valid at signing time, {what} since revoked" in detail
        assert "单位注销" in detail
    assert after.checks["signature"].ok and after.checks["document_digest"].ok

    wrong = verification.verify(db, signed.signature_der, document_digest=sm3(b"another"))
    assert not wrong.valid and not wrong.checks["document_digest"].ok and wrong.checks["signature"].ok
    unchecked = verification.verify(db, signed.signature_der, document_digest=None)
    assert unchecked.valid and not unchecked.complete and unchecked.checks["document_digest"].skipped


def test_signature_made_while_suspended_is_not_valid(db, kek, seal):
    """A status that began before the signing time fails check 3 (what a forged time would show)."""
    signed = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST).signature
    row = db.get(Seal, seal.id)
    seals.change_status(db, seal.id, "suspend", reason="可疑", actor="a")
    row.status_changed_at = signed.signed_at - timedelta(minutes=1)
    db.commit()
    report = verification.verify(db, signed.signature_der, document_digest=DIGEST)
    assert not report.valid and not report.checks["seal"].ok
    assert "suspended at signing time" in report.checks["seal"].detail


def test_end_reads_gives_the_connection_back_before_the_checks(db, kek, seal):
    """The /verify view's session only reads: with end_reads its transaction (and pooled
    connection) is over once the status records are read; the report is the same."""
    signed = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST).signature
    seals.change_status(db, seal.id, "revoke", reason="单位注销", actor="a")
    held = verification.verify(db, signed.signature_der, document_digest=DIGEST)
    assert db.in_transaction()
    ended = verification.verify(db, signed.signature_der, document_digest=DIGEST, end_reads=True)
    assert not db.in_transaction()
    assert ended.to_dict() == held.to_dict() and ended.valid and "单位注销" in ended.checks["seal"].detail
