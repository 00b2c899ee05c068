"""The message hub client (contract 4) and the outbox."""

from __future__ import annotations

import pytest

from common.http import ServiceClient
from common.peers.notifier import HubNotifier, NotifyFailed


def test_hub_notifier_speaks_the_contract(serve_app):
    from flask import Flask, jsonify, request

    seen = []
    hub = Flask("hub")

    @hub.post("/messages")
    def messages():
        seen.append((request.headers.get("Idempotency-Key"), request.headers.get("Authorization"),
                     request.get_json()))
        if request.get_json()["template"] == "broken":
            return jsonify(code="unknown_template"), 422
        return jsonify(message_id="m-1", status="queued"), 202

    notifier = HubNotifier(ServiceClient(serve_app(hub), token_provider=lambda: "hub-token"))
    recipients = [{"subject": "p-zhang"}, {"phone": "13800001234"}]
    assert notifier.send("licence_issued", {"licence_name": "居住证", "face_number": "JZZ1", "issuer": "公安局"},
                         recipients, idempotency_key="n-1") == "m-1"
    key, auth, body = seen[0]
    assert key == "n-1" and auth == "Bearer hub-token"
    assert body == {"template": "licence_issued", "variables": {"licence_name": "居住证", "face_number": "JZZ1",
                                                                "issuer": "公安局"},
                    "recipients": recipients, "category": "notice", "priority": "normal", "channels": ["inapp", "sms"]}
    with pytest.raises(NotifyFailed):
        notifier.send("broken", {}, recipients, idempotency_key="n-2")
    with pytest.raises(NotifyFailed):
        HubNotifier(ServiceClient("http://127.0.0.1:9", retries=0, timeout=1)).send("x", {}, recipients,
                                                                                    idempotency_key="n-3")


def test_an_unsent_notification_is_logged_by_its_type_not_its_message(app):
    from structlog.testing import capture_logs

    from common.db import get_db
    from common.peers import outbox

    class Refusing:
        def send(self, template, variables, recipients, *, idempotency_key):
            raise NotifyFailed("hub at https://licenses:s3cret@hub.internal answered 503")

    from licenses.models import Notification as model
    with get_db(app).session() as session:
        outbox.enqueue(session, model, "licence_issued", {"n": 1}, [{"channel": "email", "address": "a@example.cn"}])
        session.commit()
        with capture_logs() as captured:
            assert outbox.deliver_pending(session, model, Refusing()) == 0
    assert [(e["event"], e["error_type"]) for e in captured] == [("notification_not_sent", "NotifyFailed")]
    assert "s3cret" not in repr(captured)
