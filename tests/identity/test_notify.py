"""``identity.notify`` and ``identity.tasks``: the reset SMS goes from the outbox to the hub as
identity's own client, survives a hub outage, and is relayed by the worker, not the request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import select

from common.ops import tasks as common_tasks
from identity import notify, recovery
from identity.models import Notification
from identity.seed import DEMO_PEOPLE

CITIZEN = DEMO_PEOPLE[0]


def _fake_hub(received: list[dict], state: dict) -> Flask:
    """The hub's send API as identity sees it: 202 with a message id, or 503 while ``down``."""
    hub = Flask("fake-hub")

    @hub.post("/messages")
    def send():
        if state.get("down"):
            return jsonify({"code": "unavailable"}), 503
        received.append({"body": request.get_json(), "key": request.headers.get("Idempotency-Key"),
                         "auth": request.headers.get("Authorization", "")})
        return jsonify({"message_id": f"msg-{len(received)}", "status": "queued"}), 202

    return hub


@pytest.fixture
def hub_setup(seeded_identity_app, serve_app):
    """A seeded identity served over HTTP (it mints xsn-identity's token) and a fake hub."""
    received, state = [], {}
    hub_url = serve_app(_fake_hub(received, state))
    server = seeded_identity_app()
    identity_url = serve_app(server)
    config = {**server.config, "IDENTITY_NOTIFIER": "hub",
              "SERVICE_URLS": {**server.config["SERVICE_URLS"], "identity": identity_url, "messaging": hub_url}}
    return server, notify.make_notifier(config), received, state


def _request_reset(app) -> None:
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        assert recovery.request_password_reset(db, id_number=CITIZEN["id_number"], mobile=CITIZEN["mobile"],
                                               link_for=lambda token: f"https://gw.example/identity/r/{token}",
                                               ttl=timedelta(minutes=30))


def test_the_reset_sms_goes_to_the_hub_as_identity_critical_and_survives_an_outage(hub_setup):
    app, hub_notifier, received, state = hub_setup
    _request_reset(app)
    state["down"] = True
    with app.app_context(), app.extensions["xsn_db"].session() as db:
        assert notify.deliver_pending(db, hub_notifier) == 0
        row = db.scalars(select(Notification)).one()
        # Kept, with what it needs to be sent later.
        assert (row.status, row.attempts) == ("pending", 1) and row.recipients == [{"phone": CITIZEN["mobile"]}]
        state["down"] = False
        assert notify.deliver_pending(db, hub_notifier) == 1
        db.refresh(row)
        assert (row.status, row.message_id, row.variables, row.recipients) == ("sent", "msg-1", {}, [])
        assert notify.deliver_pending(db, hub_notifier) == 0  # nothing pending: nothing sent twice
    [sent] = received
    assert sent["key"] == row.id and sent["auth"].startswith("Bearer ")
    body = sent["body"]
    assert body["template"] == "password_reset" and body["recipients"] == [{"phone": CITIZEN["mobile"]}]
    assert (body["category"], body["priority"], body["channels"]) == ("security", "critical", ["sms"])
    assert body["variables"]["link"].startswith("https://gw.example/identity/r/")
    assert body["variables"]["minutes"] == "30"


def test_the_request_asks_the_worker_and_a_broker_outage_does_not_fail_it(seeded_identity_app, monkeypatch):
    app = seeded_identity_app(IDENTITY_NOTIFIER="hub")
    asked = []
    monkeypatch.setattr(common_tasks.celery_app, "send_task", lambda name, **kw: asked.append((name, kw)))
    app.extensions["identity_relay"]()
    assert asked == [("identity.deliver_notifications", {"retry": False, "expires": 60})]

    def broker_down(name, **kw):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(common_tasks.celery_app, "send_task", broker_down)
    app.extensions["identity_relay"]()  # logged; the beat sweeper sends the row later


def test_the_worker_task_delivers_with_the_apps_notifier(seeded_identity_app, monkeypatch):
    from identity import tasks

    app = seeded_identity_app(IDENTITY_NOTIFIER="memory")
    monkeypatch.setitem(common_tasks._apps, "identity", app)  # the worker's app, on this test's database
    _request_reset(app)
    assert tasks.deliver_notifications() == 1
    assert tasks.deliver_notifications() == 0
    assert len(app.extensions["identity_notifier"].sent) == 1


def test_beat_schedule():
    common_tasks.celery_app.loader.import_default_modules()
    common_tasks.celery_app.finalize()
    entry = common_tasks.celery_app.conf.beat_schedule["identity: deliver notifications"]
    assert entry["task"] == "identity.deliver_notifications" and entry["schedule"] == 30.0
