"""The send API: a message reaches the inbox, its status is queryable, repeats are idempotent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from common.db import get_db
from messaging.models import Delivery, Message, Recipient

ISSUED = {"licence_name": "营业执照", "face_number": "61010020260001", "issuer": "西安市市场监督管理局"}


def count(app, model) -> int:
    with get_db(app).session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_send_to_subject_lands_in_inbox_and_status_says_delivered(licenses, person):
    response = licenses.send({"template": "licence_issued", "variables": ISSUED,
                              "recipients": [{"subject": "person-zhang"}], "channels": ["inapp"]}, key="k-1")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued" and body["message_id"].startswith("msg_")

    status = licenses.get(f"/messages/{body['message_id']}").get_json()
    assert status["status"] == "completed"
    assert status["counts"] == {"delivered": 1}
    assert status["recipients"][0]["channel"] == "inapp"

    zhang = person("person-zhang")
    items = zhang.get("/inbox").get_json()
    assert [i["title"] for i in items] == ["电子证照已签发：营业执照"]
    assert "61010020260001" in items[0]["body"]
    assert zhang.get("/inbox/unread-count").get_json() == {"unread": 1}
    assert zhang.post(f"/inbox/{items[0]['id']}/read").status_code == 200
    assert zhang.get("/inbox/unread-count").get_json() == {"unread": 0}
    assert licenses.get(f"/messages/{body['message_id']}").get_json()["recipients"][0]["status"] == "read"
    assert person("person-li").get("/inbox").get_json() == []  # nobody else sees it
    assert person("person-li").post(f"/inbox/{items[0]['id']}/read").status_code == 404
    assert zhang.client.delete(f"/inbox/{items[0]['id']}", headers=zhang.headers()).status_code == 204
    assert zhang.get("/inbox").get_json() == []


def test_repeat_with_the_same_key_returns_the_first_message(licenses, hub_app):
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}]}
    first = licenses.send(body, key="same")
    again = licenses.send(body, key="same")
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["message_id"] == first.get_json()["message_id"]
    assert count(hub_app, Message) == 1 and count(hub_app, Delivery) == 1


def test_same_key_other_body_is_422_and_writes_nothing(licenses, hub_app):
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}]}
    assert licenses.send(body, key="k").status_code == 202
    other = licenses.send({**body, "recipients": [{"subject": "person-li"}]}, key="k")
    assert other.status_code == 422
    assert other.get_json()["code"] == "idempotency_key_reused"
    assert other.headers["Content-Type"] == "application/problem+json"
    assert count(hub_app, Message) == 1


def test_keys_are_per_app(licenses, payment):
    a = licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]},
                      key="shared")
    b = payment.send({"template": "payment_receipt", "variables": {"payment_code": "1", "amount_yuan": "2",
                                                                    "receipt_number": "3"},
                      "recipients": [{"subject": "person-li"}]}, key="shared")
    assert a.status_code == b.status_code == 202
    assert a.get_json()["message_id"] != b.get_json()["message_id"]
    assert licenses.get(f"/messages/{b.get_json()['message_id']}").status_code == 404  # not its message


def test_fallback_to_the_next_channel_and_suppression_without_any(licenses, hub_app):
    """王五 has neither mobile nor e-mail: sms-only reaches nobody; inapp then sms reaches 张三 in-app."""
    response = licenses.send({"template": "licence_issued", "variables": ISSUED, "channels": ["sms"],
                              "recipients": [{"subject": "person-wang"}]})
    status = licenses.get(f"/messages/{response.get_json()['message_id']}").get_json()
    assert status["status"] == "completed" and status["recipients"][0]["status"] == "suppressed"
    assert status["recipients"][0]["reason"] == "no_channel"


def test_sms_failure_falls_back_to_inapp(licenses, hub_app):
    """The carrier is unreachable (port 9): after the retries run out, the in-app channel delivers."""
    from messaging import delivery, wiring
    from messaging.dispatch import InlineDispatcher

    response = licenses.send({"template": "licence_issued", "variables": ISSUED, "channels": ["sms", "inapp"],
                              "recipients": [{"subject": "person-zhang"}]})
    message_id = response.get_json()["message_id"]
    with get_db(hub_app).session() as session:
        row = session.scalars(select(Delivery).where(Delivery.message_id == message_id)).one()
        assert row.channel == "sms" and row.status == "queued" and row.attempt == 1  # one retry left
        row.next_attempt_at = row.updated_at  # due now
        session.commit()
        inline = InlineDispatcher(get_db(hub_app).sessionmaker, hub_app.config)
        assert delivery.relay(session, inline, wiring.delivery_settings(hub_app.config)) == 1  # sms fails
        assert delivery.relay(session, inline, wiring.delivery_settings(hub_app.config)) == 1  # inapp
        session.expire_all()
        rows = session.scalars(select(Delivery).where(Delivery.message_id == message_id)
                               .order_by(Delivery.id)).all()
    assert [(r.channel, r.status) for r in rows] == [("sms", "failed"), ("inapp", "delivered")]
    assert not rows[0].dead  # it fell back, so nothing is dead
    status = licenses.get(f"/messages/{message_id}").get_json()
    assert status["recipients"][0]["channel"] == "inapp" and status["status"] == "completed"


@pytest.mark.parametrize("recipient", [{"phone": "13800001234"}, {"email": "a@example.cn"}])
def test_licenses_may_not_send_to_raw_addresses(licenses, hub_app, recipient):
    response = licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [recipient]})
    assert response.status_code == 403
    assert response.get_json()["code"] == "recipient_not_allowed"
    assert count(hub_app, Message) == 0


def test_bulk_send_is_one_job_in_batches(payment, hub_app):
    recipients = [{"phone": f"1380000{i:04d}"} for i in range(250)]
    response = payment.send({"template": "payment_notice", "channels": ["inapp"], "recipients": recipients,
                             "variables": {"payment_code": "6101", "amount_yuan": "50.00", "due_date": "2026-12-31",
                                           "department": "西安市交通局"}})
    assert response.status_code == 202
    body = response.get_json()
    assert body["job_id"].startswith("job_")
    status = payment.get(f"/messages/{body['message_id']}", query_string={"limit": 10}).get_json()
    # Raw phone numbers cannot be reached in-app: each is suppressed, none is lost.
    assert status["counts"] == {"suppressed": 250} and len(status["recipients"]) == 10
    assert count(hub_app, Recipient) == 250


def test_a_repeat_that_overtakes_the_first_request_is_one_message(licenses, hub_app, monkeypatch):
    """A client repeats after a gateway timeout while the hub is still accepting the first (its
    identity lookups take long for a big send): whichever commits second answers with the first."""
    from messaging import sending

    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}],
            "category": "notice", "priority": "normal", "channels": ["inapp"]}
    hub = hub_app.extensions["messaging"]
    real, repeats = hub.directory.lookup, []
    directory = SimpleNamespace(lookup=real)  # the repeat's own lookups are quick

    def slow_lookup(subjects):
        if not repeats:  # the repeat arrives and commits while the first is still looking people up
            with get_db(hub_app).session() as other:
                repeats.append(sending.accept_message(
                    other, client_id="xsn-licenses", body=body, idempotency_key=key, directory=directory,
                    limiter=hub_app.extensions["xsn_ratelimits"], limits=hub.limits).message.id)
        return real(subjects)

    monkeypatch.setattr(hub.directory, "lookup", slow_lookup)
    key = "overtaken"
    first = licenses.send(body, key=key)
    assert first.status_code == 200 and first.headers["Idempotent-Replayed"] == "true"
    assert first.get_json()["message_id"] == repeats[0]
    assert count(hub_app, Message) == 1

    repeats.clear()  # a different body under a key that was taken meanwhile: the usual 422
    key = "overtaken-2"
    other = licenses.send({**body, "variables": {**ISSUED, "issuer": "别人"}}, key=key)
    assert (other.status_code, other.get_json()["code"]) == (422, "idempotency_key_reused")
    assert count(hub_app, Message) == 2
