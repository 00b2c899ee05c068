"""The payment API over HTTP (test client): tokens, problem+json errors, idempotency, the cashier."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from common.errors import ServiceUnavailable
from payment.ledger.models import LedgerTransfer
from payment.models import Notice
from tests.support.console import CSRF_RE

DUE = (date.today() + timedelta(days=10)).isoformat()
BODY = {"payer_kind": "person", "payer_name": "张三", "payer_id": "11010519491231002X",
        "items": [{"fee_code": "MKT-001", "quantity": 2}], "total_amount": 2000, "due_date": DUE}


def _count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_issue_read_and_replay_a_notice(client, collector, session):
    created = client.post("/notices", json=BODY, headers={**collector, "Idempotency-Key": "k1"})
    assert created.status_code == 201, created.get_json()
    notice = created.get_json()
    assert notice["payer_id_masked"] == "1101**********002X" and "payer_id" not in notice
    replay = client.post("/notices", json=BODY, headers={**collector, "Idempotency-Key": "k1"})
    assert replay.status_code == 200 and replay.get_json()["id"] == notice["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = client.post("/notices", json={**BODY, "payer_name": "李四"}, headers={**collector, "Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_reused"
    assert client.get(f"/notices/{notice['id']}", headers=collector).get_json()["status"] == "created"
    events = client.get(f"/notices/{notice['id']}/events", headers=collector).get_json()
    assert [e["to_status"] for e in events] == ["created"]
    assert _count(session, Notice) == 1


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"total_amount": 1999}, 422, "total_mismatch"),
    ({"total_amount": "2000"}, 422, "validation_failed"),
    ({"total_amount": 20.5}, 422, "validation_failed"),
    ({"items": [{"fee_code": "MKT-001", "quantity": -1}]}, 422, "validation_failed"),
    ({"items": [{"fee_code": "NOPE", "quantity": 1}], "total_amount": 1}, 422, "unknown_fee_code"),
    ({"payer_id": "123"}, 422, "invalid_citizen_id"),
    ({"payer_kind": "alien"}, 422, "validation_failed"),
    ({"due_date": "2001-01-01"}, 422, "validation_failed"),
    ({"total_amount": 2**70}, 422, "validation_failed"),
])
def test_bad_notices_are_problem_documents_and_write_nothing(client, collector, session, change, status, code):
    answer = client.post("/notices", json={**BODY, **change}, headers=collector)
    assert answer.status_code == status and answer.content_type == "application/problem+json"
    assert answer.get_json()["code"] == code
    assert _count(session, Notice) == 0


def test_malformed_json_is_a_problem(client, collector):
    answer = client.post("/notices", data=b'{"payer_kind": ', headers={**collector, "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.get_json()["code"] == "malformed_json"


def test_tokens_and_scopes(client, tokens):
    assert client.post("/notices", json=BODY).status_code == 401
    wrong_scope = tokens.bearer(sub="x", scope="payment:read", aud="xsn:payment", client_id="xsn-dept-market")
    assert client.post("/notices", json=BODY, headers=wrong_scope).status_code == 403
    stranger = tokens.bearer(sub="x", scope="payment:collect", aud="xsn:payment", client_id="xsn-somebody")
    answer = client.post("/notices", json=BODY, headers=stranger)
    assert answer.status_code == 403 and answer.get_json()["code"] == "not_a_collecting_department"


def test_another_departments_notice_is_not_found(client, collector, tokens, app):
    notice = client.post("/notices", json=BODY, headers=collector).get_json()
    app.config["PAYMENT_DEPARTMENTS"]["xsn-dept-other"] = {"code": "91110000600037341L", "name": "其他"}
    other = tokens.bearer(sub="o", scope="payment:collect", aud="xsn:payment", client_id="xsn-dept-other")
    assert client.get(f"/notices/{notice['id']}", headers=other).status_code == 404


def test_the_public_lookup_needs_code_and_name(client, collector):
    notice = client.post("/notices", json=BODY, headers=collector).get_json()
    found = client.post("/notices/lookup", json={"payment_code": notice["payment_code"], "payer_name": "张三"})
    assert found.status_code == 200 and set(found.get_json()) >= {"total_amount", "items", "status"}
    assert "id" not in found.get_json() and "payer_id_masked" not in found.get_json()
    assert client.post("/notices/lookup", json={"payment_code": notice["payment_code"],
                                                "payer_name": "李四"}).status_code == 404


def test_ledger_transfers_over_http_are_all_or_nothing(client, tokens, session):
    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    good = {"id": "h1", "debit_account_id": "channel_receivable:bank", "credit_account_id": "payer_clearing",
            "amount": 100, "code": "payment"}
    bad = {"id": "h2", "debit_account_id": "payer_clearing", "credit_account_id": "suspense", "amount": 500,
           "code": "payment"}
    refused = client.post("/ledger/transfers", json={"transfers": [good, bad]}, headers=admin)
    assert refused.status_code == 422 and refused.get_json()["code"] == "exceeds_credits"
    assert refused.get_json()["index"] == 1
    assert _count(session, LedgerTransfer) == 0
    written = client.post("/ledger/transfers", json={"transfers": [good]}, headers=admin)
    assert written.status_code == 201 and written.get_json()["transfers"][0]["created"] is True
    again = client.post("/ledger/transfers", json={"transfers": [good]}, headers=admin)
    assert again.get_json()["transfers"][0]["created"] is False
    conflict = client.post("/ledger/transfers", json={"transfers": [{**good, "amount": 101}]}, headers=admin)
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "transfer_exists_with_different_fields"


def test_the_cashier_page_finds_a_notice_in_chinese_and_english(client, collector):
    notice = client.post("/notices", json=BODY, headers=collector).get_json()
    page = client.get("/cashier")
    assert page.status_code == 200 and "收银台" in page.text
    token = CSRF_RE.search(page.text).group(1)
    found = client.post("/cashier", data={"csrf_token": token, "payment_code": notice["payment_code"],
                                          "payer_name": "张三"})
    assert found.status_code == 200 and "营业执照副本补领工本费" in found.text and "20.00" in found.text
    assert 'id="pay-wechat"' in found.text
    missing = client.post("/cashier", data={"csrf_token": token, "payment_code": "0" * 20, "payer_name": "张三"})
    assert missing.status_code == 404 and "未找到" in missing.text
    assert "Cashier" in client.get("/cashier?lang=en").text
    assert client.post("/cashier", data={"payment_code": "1", "payer_name": "x"}).status_code == 400  # no CSRF


def test_the_english_cashier_page_has_no_chinese_punctuation(client, collector):
    notice = client.post("/notices", json=BODY, headers=collector).get_json()
    page = client.get("/cashier?lang=en")
    found = client.post("/cashier?lang=en", data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                                  "payment_code": notice["payment_code"], "payer_name": "张三"})
    assert "Collecting department: 西安市市场监督管理局" in found.text and "：" not in found.text
    chinese = client.post("/cashier?lang=zh", data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                                    "payment_code": notice["payment_code"], "payer_name": "张三"})
    assert "执收单位：西安市市场监督管理局" in chinese.text


def test_the_payer_is_told_through_the_hub_after_the_response(client, collector, app):
    body = dict(BODY, payer_subject="person-zhangsan")
    response = client.post("/notices", json=body, headers=collector)
    assert response.status_code == 201
    assert app.extensions["payment_notifier"].sent == []  # sent once the response has gone out
    response.close()  # as a server does after sending it
    sent = app.extensions["payment_notifier"].sent
    assert [(m["template"], m["recipients"]) for m in sent] == [("payment_notice", [{"subject": "person-zhangsan"}])]
    assert sent[0]["variables"]["amount_yuan"] == "20.00"


def test_a_transfer_answer_is_what_the_documented_schema_dumps(client, tokens):
    """POST /ledger/transfers renders its answer without the response schema's dump: it must be
    exactly what TransferBatchResultSchema would produce, replays included."""
    from payment.schemas import TransferBatchResultSchema, TransferSchema

    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    transfers = [{"id": "d1", "debit_account_id": "channel_receivable:bank", "credit_account_id": "payer_clearing",
                  "amount": 100, "code": "payment", "reference": "r-1"},
                 {"id": "d2", "debit_account_id": "channel_receivable:bank", "credit_account_id": "payer_clearing",
                  "amount": 50, "code": "payment", "kind": "pending"}]
    for expected_status in (201, 201):  # written, then replayed (created: false)
        answer = client.post("/ledger/transfers", json={"transfers": transfers}, headers=admin)
        assert answer.status_code == expected_status and answer.content_type == "application/json"
        body = answer.get_json()
        dumped = TransferBatchResultSchema().dump(
            {"transfers": [{**t, "created_at": datetime.fromisoformat(t["created_at"])} for t in body["transfers"]]})
        assert body == dumped and answer.data == current_json(client.application, dumped)
        # a dump leaves out what it is not given: every documented member must be there
        assert all(set(t) == set(TransferSchema().fields) for t in body["transfers"]), body
    assert [t["created"] for t in body["transfers"]] == [False, False]
    assert [t["status"] for t in body["transfers"]] == ["posted", "pending"]


def test_a_plain_transfer_body_takes_the_fast_path_and_any_other_the_schema(client, tokens, monkeypatch):
    """payment.schemas.plain_transfer_batch, through common.web.arguments.arguments_or: a plain
    body never reaches marshmallow; one with a member the fast path does not take does."""
    from payment.schemas import TransferBatchSchema

    loads: list = []
    real = TransferBatchSchema.load
    monkeypatch.setattr(TransferBatchSchema, "load", lambda self, *a, **k: loads.append(1) or real(self, *a, **k))
    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    plain = {"id": "f1", "debit_account_id": "channel_receivable:bank", "credit_account_id": "payer_clearing",
             "amount": 1, "code": "payment"}
    assert client.post("/ledger/transfers", json={"transfers": [plain]}, headers=admin).status_code == 201
    assert loads == []
    refused = client.post("/ledger/transfers", json={"transfers": [{**plain, "extra": 1}]}, headers=admin)
    assert refused.status_code == 422 and loads == [1]


def current_json(app, value) -> bytes:
    with app.app_context():
        return app.json.response(value).data


@pytest.mark.parametrize(("body", "field"), [
    ({"transfers": [{"id": "x", "debit_account_id": "a", "credit_account_id": "b", "amount": True,
                     "code": "payment"}]}, "transfers"),
    ({"transfers": [{"id": "x", "debit_account_id": "a", "credit_account_id": "b", "amount": 1, "code": "payment",
                     "pending_id": None}]}, "transfers"),
    ({"transfers": []}, "transfers"),
    ({"transfers": [], "more": 1}, "more"),
    ([], "_schema"),
])
def test_a_transfer_body_off_the_fast_path_gets_the_schemas_errors(client, tokens, session, body, field):
    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    answer = client.post("/ledger/transfers", json=body, headers=admin)
    assert answer.status_code == 422 and answer.content_type == "application/problem+json"
    assert answer.get_json()["code"] == "validation_failed" and field in answer.get_json()["errors"]
    assert _count(session, LedgerTransfer) == 0


def test_a_transfer_body_that_is_not_json_is_refused_as_before(client, tokens):
    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    malformed = client.post("/ledger/transfers", data=b'{"transfers": [', headers={**admin,
                                                                                   "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.get_json()["code"] == "malformed_json"
    utf16 = client.post("/ledger/transfers", data='{"transfers": []}'.encode("utf-16"),
                        headers={**admin, "Content-Type": "application/json"})
    assert utf16.status_code == 400 and utf16.get_json()["code"] == "malformed_json"  # webargs reads UTF-8 only
    form = client.post("/ledger/transfers", data={"transfers": "x"}, headers=admin)
    assert form.status_code == 422 and "transfers" in form.get_json()["errors"]


def _error(answer) -> tuple[int, str | None, str]:
    """The status, problem code (``data-code``) and text of an error page."""
    found = re.search(r'id="error" data-code="([^"]*)"', answer.text)
    return answer.status_code, found and found.group(1), answer.text


def test_the_cashier_answers_a_browser_with_an_error_page_and_the_api_with_a_problem(client, collector):
    unknown = client.get("/cashier/result/no-such-order")
    assert unknown.mimetype == "text/html" and _error(unknown)[:2] == (404, "order_not_found")
    assert "未找到该支付订单" in unknown.text and "请求编号" in unknown.text
    api = client.get("/notices/no-such-notice", headers=collector)
    assert api.status_code == 404 and api.mimetype == "application/problem+json"
    expired = client.post("/cashier", data={"payment_code": "1", "payer_name": "x"})  # no CSRF token
    assert expired.mimetype == "text/html" and _error(expired)[:2] == (400, "csrf_failed")
    assert "页面已过期" in expired.text
    english = client.get("/cashier/result/no-such-order?lang=en")  # remembered from here on (a cookie)
    assert english.status_code == 404 and "No such payment order" in english.text and "未找到" not in english.text


def test_a_refused_or_failed_payment_at_the_cashier_answers_an_error_page(client, collector, app):
    notice = client.post("/notices", json=BODY, headers=collector).get_json()
    token = CSRF_RE.search(client.get("/cashier").text).group(1)
    form = {"csrf_token": token, "payment_code": notice["payment_code"], "payer_name": "张三"}
    refused = client.post("/cashier/pay", data={**form, "channel": "paypal"})
    assert _error(refused)[:2] == (422, "unknown_channel") and "请选择收银台提供的支付方式" in refused.text

    class Down:
        def open_order(self, *_args, **_kwargs):
            raise ServiceUnavailable("the wechat channel is unreachable", code="channel_unavailable")

    class Broken:
        def open_order(self, *_args, **_kwargs):
            raise RuntimeError("a bug")

    app.extensions["payment_institution"] = Down()
    down = client.post("/cashier/pay", data={**form, "channel": "wechat"})
    assert _error(down)[:2] == (503, "channel_unavailable") and "支付机构暂时无法连接" in down.text
    app.extensions["payment_institution"] = Broken()
    broken = client.post("/cashier/pay?lang=en", data={**form, "channel": "wechat"})
    assert _error(broken)[:2] == (500, "internal_error") and "could not be completed" in broken.text
    assert "a bug" not in broken.text
