"""Text a database cannot store (a NUL, an unpaired surrogate) in a transfer is bad input: 422
with the field named, nothing written, on both the plain-body fast path and the schema's path.
And whatever one request's values make the one-statement writer raise, the other requests of
its group are still answered as if alone (common.group_commit)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from common.db import get_db
from common.group_commit import _Waiting
from payment.ledger.group_commit import GroupCommitter
from payment.ledger.models import LedgerTransfer
from payment.ledger.transfers import TransferSpec
from tests.payment.conftest import open_test_accounts

GOOD = {"id": "t1", "debit_account_id": "channel_receivable:bank", "credit_account_id": "payer_clearing",
        "amount": 100, "code": "payment"}


@pytest.mark.parametrize(("member", "value"), [
    ("reference", "a\u0000b"), ("id", "\ud800"), ("debit_account_id", "x\udfff"), ("pending_id", "\u0000"),
])
def test_a_nul_or_an_unpaired_surrogate_is_refused_with_its_field(client, tokens, session, member, value):
    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    # json.dumps writes the surrogate as its \\ud800 escape, as a client's JSON would carry it
    body = json.dumps({"transfers": [{**GOOD, member: value}]})
    refused = client.post("/ledger/transfers", data=body, content_type="application/json", headers=admin)
    assert refused.status_code == 422, refused.get_json()
    problem = refused.get_json()
    assert refused.mimetype == "application/problem+json" and problem["code"] == "validation_failed"
    assert member in problem["errors"]["transfers"]["0"], problem["errors"]
    assert session.scalar(select(func.count()).select_from(LedgerTransfer)) == 0


def test_a_group_whose_one_statement_raises_is_answered_request_by_request(app, session):
    open_test_accounts(session)
    session.commit()

    offered: list[int] = []

    def unsendable(groups):
        offered.append(len(groups))
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    committer = GroupCommitter(get_db(app).session, write_committed=unsendable, committers=1)
    group = [_Waiting([TransferSpec(f"g{i}", "channel_receivable:bank", "payer_clearing", 10, "payment")])
             for i in range(3)]
    committer._commit(group)  # the committer thread's step, on one group of three as the queue gave it
    assert offered == [3]  # the one statement was offered the whole group, and raised
    assert all(waiting.outcome[0].created for waiting in group), [w.outcome for w in group]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(LedgerTransfer)) == 3


def test_a_failed_one_statement_is_logged_by_its_type_not_its_message(monkeypatch):
    from sqlalchemy import create_engine
    from structlog.testing import capture_logs

    from payment.ledger import group_write

    def failing(connection, specs, *, now):
        raise RuntimeError("INSERT INTO ledger_transfers ... password=s3cret")  # a driver error quotes SQL

    monkeypatch.setattr(group_write.one_statement, "write_new", failing)
    writer = group_write.OneStatementWriter(create_engine("sqlite://"))
    with capture_logs() as captured:
        assert writer._write([[TransferSpec("g0", "channel_receivable:bank", "payer_clearing", 10, "payment")]]) is None
    writer.close()
    assert [(e["event"], e["error_type"]) for e in captured] == [("ledger_one_statement_failed", "RuntimeError")]
    assert "s3cret" not in repr(captured)
