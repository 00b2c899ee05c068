"""Seal registration and its validation, pictures, status transitions and their history
(:mod:`seal.seals`), called directly with a session.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from common.errors import Problem
from seal import certificates, seals
from seal.models import Certificate, Seal
from tests.seal.domain import (
    ORG_CODE,
    ORG_NAME,
    expect_problem,
)
from tests.support.races import paused_after_check


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
    expect_problem("image_not_png", 422, seals.create_seal, db, kek, org_code=ORG_CODE, org_name=ORG_NAME,
             kind="official", image_png=b"GIF89a" + bytes(64))


def test_suspend_resume_revoke_with_history(db, seal):
    expect_problem("reason_required", 422, seals.change_status, db, seal.id, "suspend", reason="  ", actor="a")
    expect_problem("invalid_action", 422, seals.change_status, db, seal.id, "destroy", reason="x", actor="a")
    expect_problem("seal_status_conflict", 409, seals.change_status, db, seal.id, "resume", reason=None, actor="a")
    expect_problem("seal_not_found", 404, seals.change_status, db, "nope", "suspend", reason="x", actor="a")

    assert seals.change_status(db, seal.id, "suspend", reason="年检", actor="staff-1").status == "suspended"
    expect_problem("seal_status_conflict", 409, seals.change_status, db, seal.id, "suspend", reason="again",
             actor="a")
    assert seals.change_status(db, seal.id, "resume", reason=None, actor="staff-1").status == "active"
    expect_problem("reason_required", 422, seals.change_status, db, seal.id, "revoke", reason=None, actor="a")
    revoked = seals.change_status(db, seal.id, "revoke", reason="单位注销", actor="staff-2")
    assert revoked.status == "revoked" and revoked.status_reason == "单位注销" and revoked.status_changed_at
    cert = db.get(Certificate, seal.signer_serial)
    assert cert.status == "revoked" and cert.revocation_reason == "单位注销" and cert.revoked_at

    for action in ("resume", "suspend", "revoke"):  # revocation is final
        expect_problem("seal_status_conflict", 409, seals.change_status, db, seal.id, action, reason="undo",
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

    expect_problem("seal_status_conflict", 409, seals.replace_image, db, kek, seal.id,
             generate_seal_png(ORG_NAME, "合同专用章"), actor="a")


def test_a_revocation_and_a_resumption_at_once_one_wins(app, db, seal, monkeypatch):
    """The status is read under the lock (on SQLite too): the resumption waits for the revocation
    and is refused, where both used to pass their check and the seal came back active."""
    from common.db import get_db

    seals.suspend_seal(db, seal.id, reason="整改", actor="admin-1")

    def change(action, reason):
        def run():
            with get_db(app).session() as own:
                return seals.change_status(own, seal.id, action, reason=reason, actor="admin-1").status
        return run

    revoked, resumed = paused_after_check(monkeypatch, seals, "record_event", change("revoke", "遗失"),
                                          change("resume", None), get_db(app).engine)
    assert revoked == "revoked"
    assert isinstance(resumed, seals.InvalidTransition) and resumed.status == 409
    db.expire_all()
    assert db.get(Seal, seal.id).status == "revoked"
    assert [(e.action, e.from_status, e.to_status) for e in seals.history(db, seal.id)][-2:] == [
        ("suspend", "active", "suspended"), ("revoke", "suspended", "revoked")]
