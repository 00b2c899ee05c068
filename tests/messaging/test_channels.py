"""SMS through the carrier simulator and e-mail through the SMTP sink, over real sockets."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from common.db import get_db
from messaging.models import Delivery
from messaging.smtp_sink import read_mailbox
from messaging.smtp_sink import start as start_sink
from tests.support.suite import free_port, wait_for

NOTICE = {"payment_code": "61010020261234", "amount_yuan": "120.00", "due_date": "2026-12-31",
          "department": "西安市交通运输局"}


@pytest.fixture
def carrier(hub_app, serve_app):
    """The simulator serving on a free port, pushing receipts to the hub served over HTTP."""
    from messaging import sms_simulator

    hub_url = serve_app(hub_app)
    simulator = sms_simulator.create_app({"VAR_DIR": hub_app.config["VAR_DIR"], "MESSAGING_URL": hub_url,
                                          "SIM_RECEIPT_DELAY": 0.05, "SIM_RECEIPT_RETRY": "0.2,0.2"})
    url = serve_app(simulator)
    hub_app.config["MESSAGING_SMS_URL"] = url + "/"
    return url


def delivery_rows(app, message_id):
    with get_db(app).session() as session:
        return session.scalars(select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.id)).all()


def test_sms_is_sent_signed_and_its_receipt_marks_it_delivered(payment, hub_app, carrier):
    response = payment.send({"template": "payment_notice", "variables": NOTICE, "channels": ["sms"],
                             "recipients": [{"phone": "+86 138 0000 1234"}]})
    message_id = response.get_json()["message_id"]
    arrived = requests.get(f"{carrier}/sim/messages", params={"phone": "13800001234"}, timeout=5).json()
    assert len(arrived) == 1
    assert arrived[0]["template_code"] == "SMS_XSN_PAYMENT_NOTICE" and arrived[0]["sign_name"] == "西安公共支付"
    assert arrived[0]["params"] == NOTICE
    status = wait_for(lambda: (s := payment.get(f"/messages/{message_id}").get_json())["status"] == "completed"
                      and s, 10, "the message completed", interval=0.05)
    assert status["recipients"][0]["status"] == "delivered" and status["recipients"][0]["channel"] == "sms"
    assert delivery_rows(hub_app, message_id)[0].provider_id == arrived[0]["biz_id"]


def test_a_failed_receipt_falls_back_to_email(payment, hub_app, carrier):
    """The carrier reports the SMS undelivered; the next channel (e-mail) has no address: failed, dead-lettered."""
    requests.post(f"{carrier}/sim/failures", json={"phone": "13900005678", "err_code": "MOBILE_NOT_ON_SERVICE"},
                  timeout=5)
    response = payment.send({"template": "payment_notice", "variables": NOTICE, "channels": ["sms", "email"],
                             "recipients": [{"phone": "13900005678"}]})
    message_id = response.get_json()["message_id"]
    status = wait_for(lambda: (s := payment.get(f"/messages/{message_id}").get_json())["status"] == "completed"
                      and s, 10, "the message completed", interval=0.05)
    assert status["recipients"][0]["status"] == "failed"
    assert "MOBILE_NOT_ON_SERVICE" in status["recipients"][0]["reason"]
    dead = payment.get("/dead-letters").get_json()
    assert [d["message_id"] for d in dead] == [message_id]


def test_per_number_limit_answers_business_limit_control(hub_app, carrier):
    from messaging.channels import Outgoing
    from messaging.channels.sms import SmsChannel
    from messaging.wiring import sms_secret

    channel = SmsChannel(carrier + "/", "xsn-embedded", sms_secret(hub_app.config))
    item = Outgoing(delivery_id=1, attempt=1, message_id="m", app="a", category="verification_code",
                    subject=None, phone="13700001111", email=None, sign_name="西安政务",
                    content={"template_code": "SMS_CODE_LOGIN", "params": {"code": "123456"}})
    assert channel.send(None, item).status == "sent"
    refused = channel.send(None, item)  # a second code within the minute
    assert refused.status == "failed" and refused.error.startswith("isv.BUSINESS_LIMIT_CONTROL")
    wrong_key = SmsChannel(carrier + "/", "xsn-embedded", "not-the-secret").send(None, item)
    assert wrong_key.status == "retry" and "SignatureDoesNotMatch" in wrong_key.error


def test_email_goes_through_smtp_to_the_sink(payment, hub_app, tmp_path):
    port = free_port()
    sink = start_sink(port, tmp_path / "mail")
    try:
        hub_app.config["MESSAGING_SMTP_PORT"] = port
        response = payment.send({"template": "payment_notice", "variables": {**NOTICE, "department": "<b>交通局</b>"},
                                 "channels": ["email"], "recipients": [{"email": "Payer@Example.cn"}]})
        message_id = response.get_json()["message_id"]
        mails = wait_for(lambda: read_mailbox(tmp_path / "mail"), 10, "the mail", interval=0.05)
    finally:
        sink.stop()
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == "payer@example.cn" and mail["Subject"] == "缴费通知：<b>交通局</b>"
    assert mail["X-XSN-Message-Id"] == message_id
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;交通局&lt;/b&gt;" in html and "<b>交通局</b>" not in html  # autoescaped HTML
    assert payment.get(f"/messages/{message_id}").get_json()["recipients"][0]["status"] == "delivered"


def test_email_to_a_closed_port_is_retried_not_lost(payment, hub_app):
    hub_app.config["MESSAGING_SMTP_PORT"] = free_port()  # nothing listens
    response = payment.send({"template": "payment_notice", "variables": NOTICE, "channels": ["email"],
                             "recipients": [{"email": "a@example.cn"}]})
    row = delivery_rows(hub_app, response.get_json()["message_id"])[0]
    assert row.status == "queued" and row.attempt == 1 and "SMTP unavailable" in row.last_error


def test_many_recipients_of_one_message_share_one_smtp_transaction(payment, hub_app, tmp_path):
    port = free_port()
    sink = start_sink(port, tmp_path / "mail")
    try:
        hub_app.config["MESSAGING_SMTP_PORT"] = port
        long_name = "西安市" + "交通运输局" * 150  # a mail far longer than SMTP's 1,000-byte line limit
        response = payment.send({"template": "payment_receipt", "variables": {"payment_code": "6101", "amount_yuan":
                                                                              "1.00", "receipt_number": long_name},
                                 "channels": ["email"],
                                 "recipients": [{"email": f"p{i}@example.cn"} for i in range(3)]})
        assert response.status_code == 202, response.get_json()
        message_id = response.get_json()["message_id"]
        mails = wait_for(lambda: read_mailbox(tmp_path / "mail"), 10, "the mail", interval=0.05)
    finally:
        sink.stop()
    assert len(mails) == 1
    assert mails[0]["X-Envelope-To"] == "p0@example.cn, p1@example.cn, p2@example.cn"
    assert mails[0]["To"] == "undisclosed-recipients:;" and long_name in mails[0].get_body(("plain",)).get_content()
    assert payment.get(f"/messages/{message_id}").get_json()["counts"] == {"delivered": 3}


def test_a_receipt_that_overtakes_the_send_is_asked_again(hub_app):
    from messaging.wiring import receipt_token

    client = hub_app.test_client()
    report = [{"biz_id": "123^456", "success": True, "err_code": "DELIVERED", "phone_number": "13800001234"}]
    response = client.post("/receipts/sms", json=report, headers={"X-XSN-Receipt-Token": receipt_token(hub_app.config)})
    assert response.status_code == 200 and response.get_json()["code"] == 1  # not yet known: push again
