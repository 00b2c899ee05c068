"""Signing one digest (:mod:`seal.signing`): refusals, input validation, idempotency (also under
a concurrent double submit on two sessions).
"""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from common.crypto.gm import sm3
from common.db import get_db, utcnow
from seal import grants, seals, signing
from seal.log.models import LogEntry
from seal.models import Seal, Signature
from tests.seal.domain import (
    DIGEST,
    LICENSES,
    PAYMENT,
    expect_problem,
    sign,
    signature_count,
)
from tests.support.concurrency import in_threads, raised


def test_signing_refused_unless_active_and_in_validity(db, kek, seal):
    seals.change_status(db, seal.id, "suspend", reason="审计", actor="a")
    problem = expect_problem("seal_suspended", 409, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST)
    assert "审计" in problem.detail
    seals.change_status(db, seal.id, "resume", reason=None, actor="a")
    assert not sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST).replayed

    row = db.get(Seal, seal.id)
    row.valid_end = utcnow() - timedelta(days=1)
    db.commit()
    expect_problem("seal_expired", 409, sign, db, kek, seal.id, actor=LICENSES, digest=sm3(b"late"))
    row.valid_start, row.valid_end = utcnow() + timedelta(days=1), utcnow() + timedelta(days=30)
    db.commit()
    expect_problem("seal_expired", 409, sign, db, kek, seal.id, actor=LICENSES, digest=sm3(b"early"))
    row.valid_start, row.valid_end = utcnow() - timedelta(days=1), utcnow() + timedelta(days=30)
    db.commit()

    seals.change_status(db, seal.id, "revoke", reason="遗失", actor="a")
    expect_problem("seal_revoked", 409, sign, db, kek, seal.id, actor=LICENSES, digest=sm3(b"after"))
    expect_problem("seal_not_found", 404, sign, db, kek, "nope", actor=LICENSES, digest=DIGEST)
    assert signature_count(db) == 1


def test_signing_input_validation(db, kek, seal):
    expect_problem("invalid_digest", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST[:31])
    expect_problem("invalid_property_info", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             property_info="合同")
    expect_problem("invalid_property_info", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             property_info="x" * 256)
    expect_problem("invalid_idempotency_key", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             idempotency_key="k" * 256)
    assert signature_count(db) == 0


def test_idempotency_key(db, kek, seal):
    first = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST, idempotency_key="req-1")
    again = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST, idempotency_key="req-1")
    assert not first.replayed and again.replayed
    assert again.signature.id == first.signature.id
    assert again.signature.signature_der == first.signature.signature_der

    expect_problem("idempotency_key_reused", 409, sign, db, kek, seal.id, actor=LICENSES,
             digest=sm3(b"another document"), idempotency_key="req-1")
    expect_problem("idempotency_key_reused", 409, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             property_info="other/1.0", idempotency_key="req-1")
    # Keys are per caller: another client may use the same key for its own request.
    grants.add_grant(db, seal.id, "client", PAYMENT.client_id, actor="a")
    other = sign(db, kek, seal.id, actor=PAYMENT, digest=DIGEST, idempotency_key="req-1")
    assert not other.replayed and other.signature.id != first.signature.id
    # Without a key every request signs anew.
    plain = [sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST) for _ in range(2)]
    assert plain[0].signature.id != plain[1].signature.id
    assert signature_count(db) == 4


def test_replay_after_suspension_returns_the_first_signature(db, kek, seal):
    """A retry of a request that already succeeded gets its result even if the seal changed since."""
    first = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST, idempotency_key="req-2")
    seals.change_status(db, seal.id, "suspend", reason="x", actor="a")
    assert sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST,
                        idempotency_key="req-2").signature.id == first.signature.id


def test_concurrent_double_submit_signs_once(app, kek, seal, monkeypatch):
    """Two threads, two sessions, one key: both pass the "seen before?" check, exactly one row.

    The barrier sits where the signing material is prepared, which is after the idempotency
    lookup and before the first write, so the two requests are forced to overlap every time.
    """
    real_material = signing.signing_material
    barrier = threading.Barrier(2, timeout=20)

    def material(*args, **kwargs):
        barrier.wait()
        return real_material(*args, **kwargs)

    monkeypatch.setattr(signing, "signing_material", material)
    database_log = app.extensions["seal_signature_log"]

    def submit(_index: int) -> tuple[str, bool]:
        with get_db(app).session() as session:
            result = signing.sign(session, kek, seal.id, actor=LICENSES, digest=DIGEST,
                                  idempotency_key="double-submit", log=database_log)
            return result.signature.id, result.replayed

    results = in_threads(submit, 2)
    assert not raised(results), results
    assert len(results) == 2 and results[0][0] == results[1][0]
    assert sorted(replayed for _, replayed in results) == [False, True]
    with get_db(app).session() as session:
        rows = session.scalars(select(Signature).where(Signature.idempotency_key == "double-submit")).all()
        assert [row.id for row in rows] == [results[0][0]]
        # The loser's log append was rolled back with it: one entry, no gap.
        entries = session.scalars(select(LogEntry.leaf_index)).all()
        assert entries == [rows[0].log_index] == [0]
