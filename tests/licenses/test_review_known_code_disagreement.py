"""A known code whose checks, made again on what the one-round-trip statement returned, refuse
the use it took (a check the statement lacks): the window gets the refusal, recorded, and the
error is logged; never a 500 (licenses.verification._verify_known)."""

from __future__ import annotations

import pytest
import structlog
from sqlalchemy import select
from structlog.testing import capture_logs

from common.db import get_db
from licenses import verification, verification_store
from licenses.models import Authorisation, UseRecord

pytestmark = pytest.mark.services


def _state(h, code):
    with get_db(h.app).session() as session:
        auth = session.scalar(select(Authorisation).where(Authorisation.code == code))
        records = [tuple(r) for r in session.execute(select(UseRecord.outcome, UseRecord.reason)
                                                     .where(UseRecord.authorisation_id == auth.id)
                                                     .order_by(UseRecord.id))]
        return auth.uses, records


def test_a_check_refusing_after_the_statement_took_the_use_answers_the_refusal(postgres_url, h, monkeypatch):
    permit = h.issue_residence().get_json()
    code = h.authorise(permit["id"], max_uses=3).get_json()["code"]
    assert h.client.post("/verify", json={"code": code}, headers=h.window).status_code == 200
    original = verification_store.PostgresStore.take_known
    taken_known = []

    def statement_without_a_check(self, *args, **kwargs):
        taken = original(self, *args, **kwargs)
        taken_known.append(taken is not None)
        if taken is not None:
            (_auth, licence, _type), _uses = taken
            licence.status = "suspended"  # what a check the statement does not make would refuse
        return taken

    monkeypatch.setattr(verification_store.PostgresStore, "take_known", statement_without_a_check)
    with capture_logs() as logs:
        monkeypatch.setattr(verification, "log", structlog.get_logger("xsn.licenses.verification"))
        response = h.client.post("/verify", json={"code": code}, headers=h.window)
    assert taken_known == [True]
    assert response.status_code == 409, response.get_json()
    body = response.get_json()
    assert body["code"] == "licence_suspended" and body["checks"]["status"] == {"ok": False, "detail": "suspended"}
    assert [(e["log_level"], e["refusal"], e["uses"], e["client_id"]) for e in logs
            if e["event"] == "known_code_check_disagrees_with_statement"] == [
        ("error", "licence_suspended", 2, h.WINDOW_CLIENT)]
    # the use the statement took stays taken; the refusal the window got is recorded too
    assert _state(h, code) == (2, [("accepted", None), ("accepted", None), ("refused", "licence_suspended")])
    monkeypatch.setattr(verification_store.PostgresStore, "take_known", original)
    again = h.client.post("/verify", json={"code": code}, headers=h.window)  # forgotten: verified from the start
    assert again.status_code == 200 and taken_known == [True]
    assert _state(h, code)[0] == 3
