"""Bad input to the send API: a clear problem document, and nothing written or queued."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.db import get_db
from messaging.models import Delivery, Message, Recipient

ISSUED = {"licence_name": "营业执照", "face_number": "61010020260001", "issuer": "西安市市场监督管理局"}
NOTICE = {"payment_code": "6101", "amount_yuan": "1.00", "due_date": "2026-12-31", "department": "交通局"}


def nothing_written(app) -> bool:
    with get_db(app).session() as session:
        return all(session.scalar(select(func.count()).select_from(m)) == 0 for m in (Message, Recipient, Delivery))


CASES = [
    ("unknown template", {"template": "no_such", "variables": {}, "recipients": [{"subject": "person-li"}]},
     422, "unknown_template"),
    ("missing variable", {"template": "licence_issued", "variables": {"licence_name": "x", "face_number": "1"},
                          "recipients": [{"subject": "person-li"}]}, 422, "invalid_variables"),
    ("undeclared variable", {"template": "licence_issued", "variables": {**ISSUED, "evil": "1"},
                             "recipients": [{"subject": "person-li"}]}, 422, "invalid_variables"),
    ("object as variable", {"template": "licence_issued", "variables": {**ISSUED, "issuer": {"__class__": 1}},
                            "recipients": [{"subject": "person-li"}]}, 422, "invalid_variables"),
    ("oversized variable", {"template": "licence_issued", "variables": {**ISSUED, "issuer": "局" * 1001},
                            "recipients": [{"subject": "person-li"}]}, 422, "invalid_variables"),
    ("unknown subject", {"template": "licence_issued", "variables": ISSUED,
                         "recipients": [{"subject": "nobody"}]}, 422, "unknown_recipient"),
    ("no recipients", {"template": "licence_issued", "variables": ISSUED, "recipients": []},
     422, "validation_failed"),
    ("two addresses in one", {"template": "licence_issued", "variables": ISSUED,
                              "recipients": [{"subject": "person-li", "phone": "13800001234"}]},
     422, "invalid_recipients"),
    ("unknown channel", {"template": "licence_issued", "variables": ISSUED, "channels": ["pigeon"],
                         "recipients": [{"subject": "person-li"}]}, 422, "validation_failed"),
    ("unknown priority", {"template": "licence_issued", "variables": ISSUED, "priority": "urgent!",
                          "recipients": [{"subject": "person-li"}]}, 422, "validation_failed"),
]


@pytest.mark.parametrize("body,status,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_a_problem_and_nothing_queued(licenses, hub_app, body, status, code):
    response = licenses.send(body, key="k")
    assert response.status_code == status, response.get_json()
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["code"] == code
    assert nothing_written(hub_app)


@pytest.mark.parametrize("recipient", [{"phone": "12345"}, {"phone": "+1 415 555 0100"}, {"phone": "1380000123x"},
                                       {"email": "not-an-address"}, {"email": "a@b.cn\r\nBcc: x@y.cn"},
                                       {"email": "Someone <a@b.cn>"}, {"email": "a" * 250 + "@b.cn"},
                                       {"phone": 13800001234}])
def test_invalid_phone_numbers_and_emails(payment, hub_app, recipient):
    response = payment.send({"template": "payment_notice", "variables": NOTICE, "recipients": [recipient]})
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_recipients"
    assert "0" in response.get_json()["errors"]
    assert nothing_written(hub_app)


def test_too_many_recipients(payment, hub_app):
    hub_app.extensions["messaging"].limits = type(hub_app.extensions["messaging"].limits)(max_recipients=3)
    response = payment.send({"template": "payment_notice", "variables": NOTICE,
                             "recipients": [{"phone": f"1380000000{i}"} for i in range(4)]})
    assert response.status_code == 413 and response.get_json()["code"] == "too_many_recipients"
    assert nothing_written(hub_app)


def test_oversized_body_is_413(licenses, hub_app):
    response = licenses.send({"template": "licence_issued", "variables": {**ISSUED, "issuer": "x" * 2_000_000},
                              "recipients": [{"subject": "person-li"}]})
    assert response.status_code == 413 and response.get_json()["code"] == "payload_too_large"
    assert nothing_written(hub_app)


def test_variables_cannot_break_out_of_the_sandbox(licenses, person, hub_app):
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for x in range(9**9) %}{% endfor %}"
    response = licenses.send({"template": "licence_issued", "variables": {**ISSUED, "licence_name": evil},
                              "recipients": [{"subject": "person-li"}]})
    assert response.status_code == 202
    item = person("person-li").get("/inbox").get_json()[0]
    assert evil in item["body"]  # the value arrived as text; it was never evaluated


@pytest.mark.parametrize("source", ["{{ ''.__class__.__mro__[1].__subclasses__() }}",
                                    "{{ licence_name.__class__.__base__ }}",
                                    "{{ cycler.__init__.__globals__.os }}",
                                    "{% for x in range(10**7) %}{% endfor %}", "{{ unclosed", "{{ 1/0 }}",
                                    "{% for a in range(200) %}{% for b in range(200) %}{% for c in range(200) %}"
                                    "{% endfor %}{% endfor %}{% endfor %}{{ undefined_name }}"])
def test_templates_that_break_the_sandbox_are_refused(licenses, hub_app, source):
    response = licenses.post("/templates", json={"code": "evil", "variables": ["licence_name"], "title": "t",
                                                 "body": source})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] in ("template_unsafe", "content_too_large")
    assert licenses.get("/templates").get_json() == [t for t in licenses.get("/templates").get_json()
                                                     if t["code"] != "evil"]


def test_unapproved_sms_template_cannot_be_sent_by_sms(payment, hub_app, tokens):
    created = payment.post("/templates", json={"code": "new_notice", "variables": ["n"], "title": "t {{ n }}",
                                               "body": "b {{ n }}", "sms_text": "s {{ n }}",
                                               "sms_template_code": "SMS_NEW_1"})
    assert created.status_code == 201 and created.get_json()["version"] == 1
    body = {"template": "new_notice", "variables": {"n": "1"}, "channels": ["sms"],
            "recipients": [{"phone": "13800001234"}]}
    refused = payment.send(body)
    assert refused.status_code == 422 and refused.get_json()["code"] == "template_not_approved"
    assert nothing_written(hub_app)
    operator = hub_app.test_client()
    headers = {"Authorization": "Bearer " + tokens.token(scope="messaging:admin", aud="xsn:messaging")}
    assert payment.post("/apps/xsn-payment/templates/new_notice/versions/1/approve-sms").status_code == 403
    assert operator.post("/apps/xsn-payment/templates/new_notice/versions/1/approve-sms",
                         headers=headers).status_code == 200


def test_sending_needs_the_scope(hub_app, tokens):
    client = hub_app.test_client()
    token = tokens.token(scope="messaging:inbox", aud="xsn:messaging", client_id="xsn-licenses")
    response = client.post("/messages", json={"template": "licence_issued", "variables": ISSUED,
                                              "recipients": [{"subject": "person-li"}]},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.get_json()["code"] == "insufficient_scope"
    assert client.post("/messages", json={}).status_code == 401
    assert nothing_written(hub_app)


def test_bad_receipts_are_refused(hub_app):
    client = hub_app.test_client()
    assert client.post("/receipts/sms", json=[]).status_code == 401
    from messaging.wiring import receipt_token

    headers = {"X-XSN-Receipt-Token": receipt_token(hub_app.config)}
    response = client.post("/receipts/sms", json={"biz_id": 1}, headers=headers)
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_receipts"


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "too-long"])
def test_a_malformed_idempotency_key_is_refused_with_the_common_code(licenses, hub_app, key):
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]}
    response = licenses.client.post("/messages", json=body, headers=licenses.headers(**{"Idempotency-Key": key}))
    assert response.status_code == 422 and response.headers["Content-Type"] == "application/problem+json"
    assert response.get_json()["code"] == "invalid_idempotency_key"
    assert nothing_written(hub_app)
