"""The audit hook (common.web.audit) with seal's store: who, what, outcome, request id; fail closed."""

from __future__ import annotations

import json

from sqlalchemy import select

from common.db import get_db
from common.web.audit import DENIED, FAILURE, SUCCESS, outcome_of
from seal.log import audit_queries
from seal.log.models import AuditQuery


def test_outcomes():
    assert [outcome_of(s) for s in (200, 201, 304, 400, 401, 403, 404, 422, 500)] == [
        SUCCESS, SUCCESS, SUCCESS, FAILURE, DENIED, DENIED, FAILURE, FAILURE, FAILURE]


def test_every_auditor_request_is_recorded_with_who_what_and_outcome(app, client, tokens):
    auditor = tokens.bearer(sub="auditor-9", scope="audit:read", client_id="audit-console")
    stranger = tokens.bearer(sub="someone", scope="seal:sign", client_id="xsn-licenses")
    assert client.get("/log/checkpoint", headers=dict(auditor, **{"X-Request-ID": "req-audit-1"})).status_code == 200
    assert client.get("/log/entries/5", headers=auditor).status_code == 404
    assert client.get("/log/checkpoint", headers=stranger).status_code == 403
    assert client.get("/log/checkpoint").status_code == 401
    with get_db(app).session() as session:
        rows = session.scalars(select(AuditQuery).order_by(AuditQuery.id)).all()
    assert [(r.subject, r.client_id, r.action, r.status, r.outcome) for r in rows] == [
        ("auditor-9", "audit-console", "LatestCheckpoint", 200, "success"),
        ("auditor-9", "audit-console", "EntryProof", 404, "failure"),
        ("someone", "xsn-licenses", "LatestCheckpoint", 403, "denied"),  # a valid token without the scope
        (None, None, "LatestCheckpoint", 401, "denied"),
    ]
    assert rows[0].request_id == "req-audit-1"
    assert json.loads(rows[1].query) == {"path": "/log/entries/5", "args": {}}
    assert all(r.time is not None for r in rows)


def test_a_record_that_cannot_be_written_fails_the_request(app, client, tokens, monkeypatch):
    def refuse(self, record):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit_queries.AuditQueryStore, "write", refuse)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error handlers answer
    auditor = tokens.bearer(sub="auditor-9", scope="audit:read", client_id="audit-console")
    response = client.get("/log/checkpoint", headers=auditor)
    assert response.status_code == 500 and response.mimetype == "application/problem+json"
    assert "note" not in response.get_data(as_text=True)  # the answer itself is not given out
