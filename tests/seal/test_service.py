"""The seal domain functions (:mod:`seal.seals`, :mod:`seal.grants`, :mod:`seal.signing`,
:mod:`seal.verification`) called directly with a session, no HTTP.

Seal registration and its validation, status transitions and their history, grants, the
refusals of signing, idempotency (also under a concurrent double submit on two sessions)
and verification of a signature made before the seal was revoked.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from common.crypto.gm import sm3
from common.crypto.keystore import load_kek
from common.db import get_db, utcnow
from common.errors import Problem
from seal import certificates, grants, seals, signing, verification
from seal.log.models import LogEntry
from seal.models import Certificate, Seal, Signature
from tests.seal.fakes import InMemoryLog

ORG_CODE = "91110000600037341L"
ORG_NAME = "西安市示范科技有限公司"
DIGEST = sm3("行政许可决定书".encode())
LICENSES = grants.Actor(sub="svc-licenses", client_id="xsn-licenses", scopes=frozenset({"seal:sign"}))
PAYMENT = grants.Actor(sub="svc-payment", client_id="xsn-payment", scopes=frozenset({"seal:sign"}))
STAFF = grants.Actor(sub="person-42", client_id="xsn-web", scopes=frozenset({"seal:sign"}))
LOG = InMemoryLog()  # signing here logs to an in-memory tree; the database log is tested with the API


def sign(*args, **kwargs) -> signing.SignResult:
    return signing.sign(*args, log=LOG, **kwargs)


@pytest.fixture
def app(make_app):
    return make_app("seal")


@pytest.fixture
def kek(app) -> bytes:
    return load_kek(app.config)


@pytest.fixture
def db(app):
    with get_db(app).session() as session:
        yield session


@pytest.fixture
def seal(db, kek) -> Seal:
    """An active contract seal granted to the licences node's client."""
    created = seals.create_seal(db, kek, org_code=ORG_CODE, org_name=ORG_NAME, kind="contract", actor="admin-1")
    grants.add_grant(db, created.id, "client", LICENSES.client_id, actor="admin-1")
    return created


def _problem(code: str, status: int, call, *args, **kwargs) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args, **kwargs)
    assert (caught.value.code, caught.value.status) == (code, status), caught.value.to_dict()
    return caught.value


def _signatures(db) -> int:
    return db.scalar(select(func.count()).select_from(Signature))


# -- registration --------------------------------------------------------------------------------


def test_create_seal(db, kek):
    seal = seals.create_seal(db, kek, org_code=ORG_CODE.lower(), org_name=f"  {ORG_NAME} ", kind="license",
                               actor="admin-1")
    assert seal.status == "active" and seal.org_code == ORG_CODE and seal.org_name == ORG_NAME
    assert seal.name == f"{ORG_NAME}证照专用章" and seal.image_generated
    assert len(seal.es_id) == 16 and seal.es_id.startswith("6101")
    assert seal.valid_end - seal.valid_start == timedelta(days=365 * seals.DEFAULT_SEAL_YEARS)
    cert = db.get(Certificate, seal.signer_serial)
    assert cert.role == "signer" and cert.seal_id == seal.id and cert.status == "active"
    assert [(e.action, e.to_status, e.actor) for e in seals.history(db, seal.id)] == [
        ("created", "active", "admin-1")]
    assert certificates.maker_certificate(db, kek, create=False) is not None


@pytest.mark.parametrize(("fields", "code"), [
    ({"org_code": "91110000600037341X"}, "invalid_credit_code"),  # wrong check character
    ({"org_code": "9111000060003734"}, None),  # too short: some credit-code error
    ({"kind": "stamp"}, "invalid_seal_kind"),
    ({"org_name": "   "}, "invalid_org_name"),
    ({"org_name": "名" * 129}, "invalid_org_name"),
    ({"years": 0}, "invalid_validity"),  # the window would end where it starts
    ({"years": -1}, "invalid_validity"),  # ... or before it
    ({"years": 21}, "invalid_validity"),
])
def test_create_seal_validation(db, kek, fields, code):
    arguments = {"org_code": ORG_CODE, "org_name": ORG_NAME, "kind": "official", **fields}
    with pytest.raises(Problem) as caught:
        seals.create_seal(db, kek, **arguments)
    assert caught.value.status == 422
    if code:
        assert caught.value.code == code
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Seal)) == 0  # nothing half-written


def test_uploaded_picture_is_validated(db, kek):
    _problem("image_not_png", 422, seals.create_seal, db, kek, org_code=ORG_CODE, org_name=ORG_NAME,
             kind="official", image_png=b"GIF89a" + bytes(64))


# -- status ------------------------------------------------------------------------------------------


def test_suspend_resume_revoke_with_history(db, seal):
    _problem("reason_required", 422, seals.change_status, db, seal.id, "suspend", reason="  ", actor="a")
    _problem("invalid_action", 422, seals.change_status, db, seal.id, "destroy", reason="x", actor="a")
    _problem("seal_status_conflict", 409, seals.change_status, db, seal.id, "resume", reason=None, actor="a")
    _problem("seal_not_found", 404, seals.change_status, db, "nope", "suspend", reason="x", actor="a")

    assert seals.change_status(db, seal.id, "suspend", reason="年检", actor="staff-1").status == "suspended"
    _problem("seal_status_conflict", 409, seals.change_status, db, seal.id, "suspend", reason="again",
             actor="a")
    assert seals.change_status(db, seal.id, "resume", reason=None, actor="staff-1").status == "active"
    _problem("reason_required", 422, seals.change_status, db, seal.id, "revoke", reason=None, actor="a")
    revoked = seals.change_status(db, seal.id, "revoke", reason="单位注销", actor="staff-2")
    assert revoked.status == "revoked" and revoked.status_reason == "单位注销" and revoked.status_changed_at
    cert = db.get(Certificate, seal.signer_serial)
    assert cert.status == "revoked" and cert.revocation_reason == "单位注销" and cert.revoked_at

    for action in ("resume", "suspend", "revoke"):  # revocation is final
        _problem("seal_status_conflict", 409, seals.change_status, db, seal.id, action, reason="undo",
                 actor="a")
    events = [(e.action, e.from_status, e.to_status, e.reason, e.actor) for e in seals.history(db, seal.id)
              if e.action in ("suspend", "resume", "revoke")]
    assert events == [("suspend", "active", "suspended", "年检", "staff-1"),
                      ("resume", "suspended", "active", None, "staff-1"),
                      ("revoke", "active", "revoked", "单位注销", "staff-2")]
    assert seals.list_seals(db, status="revoked")[0].id == seal.id
    assert seals.list_seals(db, status="active") == []


def test_revoked_seal_picture_cannot_change(db, kek, seal):
    seals.change_status(db, seal.id, "revoke", reason="lost", actor="a")
    from seal.images import generate_seal_png

    _problem("seal_status_conflict", 409, seals.replace_image, db, kek, seal.id,
             generate_seal_png(ORG_NAME, "合同专用章"), actor="a")


# -- grants ------------------------------------------------------------------------------------------


def granted(db, seal, actor) -> bool:
    return seal.id in {s.id for s in grants.granted_seals(db, actor)}


def test_grants_decide_who_may_sign(db, kek, seal):
    assert granted(db, seal, LICENSES)
    assert not granted(db, seal, PAYMENT) and not granted(db, seal, STAFF)
    _problem("seal_not_granted", 403, sign, db, kek, seal.id, actor=PAYMENT, digest=DIGEST)

    staff = grants.add_grant(db, seal.id, "subject", STAFF.sub, actor="admin-1")
    again = grants.add_grant(db, seal.id, "subject", f" {STAFF.sub} ", actor="admin-1")
    assert again.id == staff.id  # idempotent
    # A subject grant is for that person whatever client they use; a client grant is not for
    # another subject of the same name on another client.
    assert granted(db, seal, grants.Actor(sub=STAFF.sub, client_id="another-app"))
    assert not granted(db, seal, grants.Actor(sub=LICENSES.sub, client_id="another-app"))
    assert sign(db, kek, seal.id, actor=STAFF, digest=DIGEST).signature.signer == STAFF.sub
    assert [s.id for s in grants.granted_seals(db, STAFF)] == [seal.id]
    assert [(g.grantee_type, g.grantee) for g in grants.list_grants(db, seal.id)] == [
        ("client", "xsn-licenses"), ("subject", "person-42")]

    grants.remove_grant(db, seal.id, staff.id, actor="admin-1")
    _problem("seal_not_granted", 403, sign, db, kek, seal.id, actor=STAFF, digest=sm3(b"other"))
    assert grants.granted_seals(db, STAFF) == []
    _problem("grant_not_found", 404, grants.remove_grant, db, seal.id, staff.id, actor="admin-1")
    _problem("invalid_grantee_type", 422, grants.add_grant, db, seal.id, "group", "x", actor="a")
    _problem("invalid_grantee", 422, grants.add_grant, db, seal.id, "client", "  ", actor="a")
    _problem("seal_not_found", 404, grants.add_grant, db, "nope", "client", "x", actor="a")
    history = [(e.action, e.reason) for e in seals.history(db, seal.id) if e.action.startswith("grant")]
    assert history == [("grant_added", "client:xsn-licenses"), ("grant_added", "subject:person-42"),
                       ("grant_removed", "subject:person-42")]


# -- signing refusals ----------------------------------------------------------------------------------


def test_signing_refused_unless_active_and_in_validity(db, kek, seal):
    seals.change_status(db, seal.id, "suspend", reason="审计", actor="a")
    problem = _problem("seal_suspended", 409, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST)
    assert "审计" in problem.detail
    seals.change_status(db, seal.id, "resume", reason=None, actor="a")
    assert not sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST).replayed

    row = db.get(Seal, seal.id)
    row.valid_end = utcnow() - timedelta(days=1)
    db.commit()
    _problem("seal_expired", 409, sign, db, kek, seal.id, actor=LICENSES, digest=sm3(b"late"))
    row.valid_start, row.valid_end = utcnow() + timedelta(days=1), utcnow() + timedelta(days=30)
    db.commit()
    _problem("seal_expired", 409, sign, db, kek, seal.id, actor=LICENSES, digest=sm3(b"early"))
    row.valid_start, row.valid_end = utcnow() - timedelta(days=1), utcnow() + timedelta(days=30)
    db.commit()

    seals.change_status(db, seal.id, "revoke", reason="遗失", actor="a")
    _problem("seal_revoked", 409, sign, db, kek, seal.id, actor=LICENSES, digest=sm3(b"after"))
    _problem("seal_not_found", 404, sign, db, kek, "nope", actor=LICENSES, digest=DIGEST)
    assert _signatures(db) == 1


def test_signing_input_validation(db, kek, seal):
    _problem("invalid_digest", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST[:31])
    _problem("invalid_property_info", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             property_info="合同")
    _problem("invalid_property_info", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             property_info="x" * 256)
    _problem("invalid_idempotency_key", 422, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             idempotency_key="k" * 256)
    assert _signatures(db) == 0


# -- idempotency ---------------------------------------------------------------------------------------


def test_idempotency_key(db, kek, seal):
    first = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST, idempotency_key="req-1")
    again = sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST, idempotency_key="req-1")
    assert not first.replayed and again.replayed
    assert again.signature.id == first.signature.id
    assert again.signature.signature_der == first.signature.signature_der

    _problem("idempotency_key_reused", 409, sign, db, kek, seal.id, actor=LICENSES,
             digest=sm3(b"another document"), idempotency_key="req-1")
    _problem("idempotency_key_reused", 409, sign, db, kek, seal.id, actor=LICENSES, digest=DIGEST,
             property_info="other/1.0", idempotency_key="req-1")
    # Keys are per caller: another client may use the same key for its own request.
    grants.add_grant(db, seal.id, "client", PAYMENT.client_id, actor="a")
    other = sign(db, kek, seal.id, actor=PAYMENT, digest=DIGEST, idempotency_key="req-1")
    assert not other.replayed and other.signature.id != first.signature.id
    # Without a key every request signs anew.
    plain = [sign(db, kek, seal.id, actor=LICENSES, digest=DIGEST) for _ in range(2)]
    assert plain[0].signature.id != plain[1].signature.id
    assert _signatures(db) == 4


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
    results: list = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            with get_db(app).session() as session:
                result = signing.sign(session, kek, seal.id, actor=LICENSES, digest=DIGEST,
                                      idempotency_key="double-submit", log=database_log)
                results.append((result.signature.id, result.replayed))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(results) == 2 and results[0][0] == results[1][0]
    assert sorted(replayed for _, replayed in results) == [False, True]
    with get_db(app).session() as session:
        rows = session.scalars(select(Signature).where(Signature.idempotency_key == "double-submit")).all()
        assert [row.id for row in rows] == [results[0][0]]
        # The loser's log append was rolled back with it: one entry, no gap.
        entries = session.scalars(select(LogEntry.leaf_index)).all()
        assert entries == [rows[0].log_index] == [0]


# -- verification --------------------------------------------------------------------------------------


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
