"""Webhooks per Standard Webhooks: signatures an independent verifier accepts, rotation,
retries, 410 and failure streaks, URL validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs
from werkzeug.wrappers import Request, Response

from common.db import get_db, utcnow
from messaging import delivery, events, wiring
from messaging.channels import webhooks
from messaging.dispatch import InlineDispatcher
from messaging.models import WebhookEndpoint, WebhookEvent
from tests.messaging.fakes import Recorder
from tests.support.suite import Served

ISSUED = {"licence_name": "营业执照", "face_number": "61010020260001", "issuer": "西安市市场监督管理局"}


class Receiver:
    """A webhook receiver over HTTP that answers what it is told to and keeps what it got."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.received: list[tuple[dict, bytes]] = []
        self.served = Served(self.app)
        self.url = f"{self.served.url}/hook"

    def app(self, environ, start_response):
        request = Request(environ)
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
        status = self.answers.pop(0) if self.answers else 204
        return Response(status=status)(environ, start_response)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.served.stop()


def register(caller, url, events=("message.completed",)):
    response = caller.post("/webhooks", json={"url": url, "event_types": list(events)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def drain(app, times=3):
    inline = InlineDispatcher(get_db(app).sessionmaker, app.config)
    with get_db(app).session() as session:
        for _ in range(times):
            delivery.relay(session, inline, wiring.delivery_settings(app.config))


def test_events_are_signed_so_a_standard_verifier_accepts_them(licenses, hub_app, receiver):
    endpoint = register(licenses, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    sent = licenses.send({"template": "licence_issued", "variables": ISSUED,
                          "recipients": [{"subject": "person-zhang"}]}, key="evt-1").get_json()
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    payload = Webhook(endpoint["secret"]).verify(body, headers)  # raises if the signature is wrong
    assert payload["type"] == "message.completed"
    assert payload["data"]["message_id"] == sent["message_id"] and payload["data"]["idempotency_key"] == "evt-1"
    assert payload["data"]["recipients"] == {"delivered": 1}
    assert headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(body.replace(b"delivered", b"failed"), headers)


def test_rotation_signs_with_both_secrets_for_a_while(licenses, hub_app, receiver):
    endpoint = register(licenses, receiver.url)
    rotated = licenses.post(f"/webhooks/{endpoint['id']}/rotate-secret").get_json()
    assert rotated["secret"] != endpoint["secret"]
    licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]})
    headers, body = receiver.received[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(body, headers)
    Webhook(rotated["secret"]).verify(body, headers)


def test_a_failing_receiver_gets_the_same_webhook_id_until_it_recovers(licenses, hub_app, receiver):
    hub_app.config["MESSAGING_WEBHOOK_RETRY_SCHEDULE"] = "0,0,0,0"
    register(licenses, receiver.url)
    receiver.answers = [500, 503]
    licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]})
    drain(hub_app)
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1
    with get_db(hub_app).session() as session:
        event = session.scalars(select(WebhookEvent)).one()
        assert event.status == "delivered" and event.attempt == 3
        assert session.scalars(select(WebhookEndpoint)).one().failure_streak == 0


def test_410_disables_the_endpoint(licenses, hub_app, receiver):
    endpoint = register(licenses, receiver.url)
    receiver.answers = [410]
    licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]})
    listed = licenses.get("/webhooks").get_json()[0]
    assert listed["enabled"] is False and "410" in listed["disabled_reason"]
    licenses.send({"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}]})
    assert len(receiver.received) == 1  # nothing more goes to a disabled endpoint
    assert licenses.post(f"/webhooks/{endpoint['id']}/enable").get_json()["enabled"] is True


def test_a_long_failure_streak_disables_the_endpoint(hub_app):
    settings = wiring.delivery_settings(hub_app.config)
    settings = type(settings)(**{**settings.__dict__, "webhook_disable_after": 3, "webhook_schedule": (0,) * 10})
    with get_db(hub_app).session() as session:
        endpoint = webhooks.create_endpoint(session, "xsn-licenses", "http://127.0.0.1:9/x", ["*"],
                                            allow_private=True)
        for n in range(3):
            events.emit(session, "xsn-licenses", "message.completed", f"k{n}", {"n": n})
        session.commit()
        ids = session.scalars(select(WebhookEvent.id)).all()
        for event_id in ids:
            session.get(WebhookEvent, event_id).status = "dispatched"
            session.get(WebhookEvent, event_id).attempt = 1
        session.commit()
        events.deliver_events(session, [(i, 1) for i in ids], lambda *a: (500, "HTTP 500"), settings)
        session.refresh(endpoint)
        assert endpoint.enabled is False and "3 failures" in endpoint.disabled_reason


def test_retry_schedule_has_jitter():
    delays = {delivery.jittered(300, rand=lambda v=v: v).total_seconds() for v in (0.0, 0.5, 1.0)}
    assert delays == {270.0, 300.0, 330.0}


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "https://127.0.0.1/hook", "https://10.1.2.3/x",
                                 "https://192.168.0.5/x", "https://169.254.169.254/latest", "https://[::1]/x",
                                 "https://internal.example/x", "ftp://example.cn/x", "https://user:pw@example.cn/x",
                                 "https://example.cn/a b", ""])
def test_private_or_malformed_urls_are_refused_in_production(url):
    resolve = {"internal.example": ["10.0.0.8"]}.get
    with pytest.raises(webhooks.InvalidWebhookUrl):
        webhooks.check_url(url, allow_private=False, resolve=lambda host: resolve(host) or [host.strip("[]")])


def test_a_public_https_url_is_accepted_in_production():
    assert webhooks.check_url("https://hooks.example.cn/x", allow_private=False,
                              resolve=lambda host: ["1.12.0.1", "2400:3200::1"]) == "https://hooks.example.cn/x"


def test_production_config_refuses_a_loopback_endpoint_over_the_api(licenses, hub_app, receiver):
    hub_app.config["ENV"] = "production"
    response = licenses.post("/webhooks", json={"url": receiver.url})
    assert response.status_code == 422 and response.get_json()["code"] == "invalid_webhook_url"
    with get_db(hub_app).session() as session:
        assert session.scalars(select(WebhookEndpoint)).all() == []


def test_rotation_grace_ends():
    endpoint = WebhookEndpoint(secret=webhooks.new_secret(), previous_secret=webhooks.new_secret(),
                               previous_secret_until=utcnow() - timedelta(seconds=1))
    assert len(webhooks.signature_header(endpoint, "msg_1", 1, b"{}", utcnow()).split(" ")) == 1


def dispatched_events(hub_app, count: int, endpoints: int = 1) -> list[tuple[str, int]]:
    """``count`` events to each of ``endpoints`` endpoints, handed to workers as attempt 1 (the
    relay's state)."""
    with get_db(hub_app).session() as session:
        for n in range(endpoints):
            webhooks.create_endpoint(session, "xsn-licenses", f"http://127.0.0.1:9/x{n}", ["*"], allow_private=True)
        for n in range(count):
            events.emit(session, "xsn-licenses", "message.completed", f"k{n}", {"n": n})
        session.commit()
        rows = session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at, WebhookEvent.id)).all()
        for row in rows:
            row.status, row.attempt, row.dispatched_at = "dispatched", 1, utcnow()
        session.commit()
        return [(row.id, 1) for row in rows]


class Poster:
    """A receiver called in-process (``post``): keeps the ids posted, answers ``answer``."""

    def __init__(self, answer: tuple[int | None, str | None] = (204, None)) -> None:
        self.answer, self.posted = answer, []

    def post(self, endpoint, event_id, body, at):
        self.posted.append(event_id)
        return self.answer


def test_two_copies_of_an_event_task_at_once_post_once(hub_app, monkeypatch):
    """A redelivered (or retried) event task run while the first copy is held after its check
    posts nothing (both used to pass the attempt check and both posted the event)."""
    from tests.support.races import paused_after_check

    settings = wiring.delivery_settings(hub_app.config)
    batch = dispatched_events(hub_app, 1)
    poster = Poster()

    def task():
        with get_db(hub_app).session() as own:
            return events.deliver_events(own, batch, lambda *args: poster.post(*args), settings)

    first, second = paused_after_check(monkeypatch, poster, "post", task, task, get_db(hub_app).engine)
    assert (first, second) == ({"delivered": 1}, {"skipped": 1})
    assert poster.posted == [batch[0][0]]
    with get_db(hub_app).session() as session:
        assert session.scalars(select(WebhookEvent.status)).all() == ["delivered"]


def test_concurrent_batches_to_one_endpoint_count_every_failure(hub_app, monkeypatch):
    """Two workers post batches to one failing endpoint at once. Each failure is counted in the
    database; each worker used to write back the streak it had loaded plus one, so one failure
    was lost and the endpoint, due to be disabled at the second, stayed enabled."""
    from tests.support.races import paused_after_check

    settings = wiring.delivery_settings(hub_app.config)
    settings = type(settings)(**{**settings.__dict__, "webhook_disable_after": 2})
    first_batch, second_batch = ([pair] for pair in dispatched_events(hub_app, 2))

    receiver = Poster((500, "HTTP 500"))

    def task(batch):
        with get_db(hub_app).session() as own:
            return events.deliver_events(own, batch, lambda *args: receiver.post(*args), settings)

    first, second = paused_after_check(monkeypatch, receiver, "post", lambda: task(first_batch),
                                       lambda: task(second_batch), get_db(hub_app).engine)
    with get_db(hub_app).session() as session:
        endpoint = session.scalars(select(WebhookEndpoint)).one()
        assert (endpoint.failure_streak, endpoint.enabled, endpoint.disabled_reason) == (
            2, False, "2 failures in a row")
    # The second batch's failure was the first counted: its event waits for a retry. The first
    # batch's made two, disabled the endpoint, and so its event failed for good.
    assert (first, second) == ({"failed": 1}, {"queued": 1})


def test_an_event_post_that_outlasts_stuck_after_does_not_record_onto_the_new_attempt(hub_app):
    """A post slower than ``stuck_after``: meanwhile the sweeper re-queues the event and a new
    attempt delivers it. The slow post's failure is dropped; it used to put the delivered event
    back in the queue, to be posted once more."""
    settings = wiring.delivery_settings(hub_app.config)
    (event_id, _), = batch = dispatched_events(hub_app, 1)
    later = utcnow() + timedelta(seconds=settings.stuck_after + 1)

    retry, meanwhile = Recorder(), {}

    def slow(endpoint, event_id, body, at):
        with get_db(hub_app).session() as other:  # meanwhile: the sweeper, the relay, another worker
            meanwhile["swept"] = delivery.sweep(other, settings, now=later)
            delivery.relay(other, retry, settings, now=later)
            meanwhile["retry"] = events.deliver_events(other, retry.event_batches[0], lambda *a: (204, None),
                                                       settings)
        return None, "timed out"

    with get_db(hub_app).session() as session:
        counts = events.deliver_events(session, batch, slow, settings)
    assert meanwhile == {"swept": 1, "retry": {"delivered": 1}} and retry.batches == []
    with get_db(hub_app).session() as session:
        event = session.get(WebhookEvent, event_id)
        assert (event.status, event.attempt, event.last_error) == ("delivered", 2, None)
    assert counts == {"dropped": 1}


def test_events_waiting_behind_a_slow_post_when_swept_are_not_posted_twice(hub_app):
    """A batch to a slow receiver outlasts ``stuck_after``: the sweeper re-queues the events this
    worker has not posted yet and a new attempt posts them. Each event is claimed only when its
    turn comes, so the slow worker skips them (claimed with the batch, both posted them, and the
    endpoint's failure streak counted each failure twice)."""
    settings = wiring.delivery_settings(hub_app.config)
    (first, _), (second, _) = batch = dispatched_events(hub_app, 2)
    later = utcnow() + timedelta(seconds=settings.stuck_after + 1)
    retry, again, meanwhile = Recorder(), Poster(), {}

    def slow(endpoint, event_id, body, at):
        if event_id == first:
            with get_db(hub_app).session() as other:  # meanwhile: the sweeper, the relay, another worker
                meanwhile["second"] = other.get(WebhookEvent, second).status
                meanwhile["swept"] = delivery.sweep(other, settings, now=later)
                delivery.relay(other, retry, settings, now=later)
                meanwhile["retry"] = events.deliver_events(other, retry.event_batches[0], again.post, settings)
        return 204, None

    posted = Poster()
    with get_db(hub_app).session() as session:
        # The first event is claimed at ``later``: it is being posted, not stuck.
        counts = events.deliver_events(session, batch, lambda *args: (posted.post(*args), slow(*args))[1], settings,
                                       now=lambda: later)
    assert meanwhile == {"second": "dispatched", "swept": 1, "retry": {"delivered": 1}}
    assert (posted.posted, again.posted) == ([first], [second])
    assert counts == {"delivered": 1, "skipped": 1}


def test_no_transaction_is_open_while_an_event_is_posted(hub_app):
    """On PostgreSQL a transaction open across the post leaves the session idle in transaction
    for up to the receiver's timeout; the re-reads before the post used to open one."""
    settings = wiring.delivery_settings(hub_app.config)
    batch = dispatched_events(hub_app, 2)
    open_during_post = []
    with get_db(hub_app).session() as session:
        def post(endpoint, event_id, body, at):
            open_during_post.append(session.in_transaction())
            return 204, None

        assert events.deliver_events(session, batch, post, settings) == {"delivered": 2}
    assert open_during_post == [False, False]


def test_an_endpoint_deleted_mid_batch_does_not_stop_the_batch(hub_app):
    """An endpoint (and its events) deleted while one of its events is posted: the failure's
    streak update finds no row; it used to raise, and the rest of the batch waited out
    ``stuck_after`` in ``sending``."""
    settings = wiring.delivery_settings(hub_app.config)
    batch = dispatched_events(hub_app, 1, endpoints=2)
    deleted = []

    def post(endpoint, event_id, body, at):
        if not deleted:
            with get_db(hub_app).session() as other:  # meanwhile: an operator removes the endpoint
                other.execute(delete(WebhookEvent).where(WebhookEvent.endpoint_id == endpoint.id))
                other.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
                other.commit()
            deleted.append(event_id)
            return 500, "HTTP 500"
        return 204, None

    with get_db(hub_app).session() as session:
        counts = events.deliver_events(session, batch, post, settings)
    assert counts == {"dropped": 1, "delivered": 1}
    with get_db(hub_app).session() as session:
        assert [(e.id, e.status) for e in session.scalars(select(WebhookEvent))] == [
            (event_id, "delivered") for event_id, _ in batch if event_id not in deleted]


def test_an_event_whose_outcome_cannot_be_recorded_does_not_stop_the_batch(hub_app, monkeypatch):
    """Recording the first event's outcome raises: it is rolled back and logged by type, and the
    next event is still posted (the exception used to end the batch)."""
    settings = wiring.delivery_settings(hub_app.config)
    (first, _), (second, _) = batch = dispatched_events(hub_app, 2)
    record = events._record

    def breaks_on_first(session, event, *args):
        if event.id == first:
            raise RuntimeError("database went away")
        return record(session, event, *args)

    monkeypatch.setattr(events, "_record", breaks_on_first)
    poster = Poster()
    with capture_logs() as logs, get_db(hub_app).session() as session:
        counts = events.deliver_events(session, batch, poster.post, settings)
    assert counts == {"error": 1, "delivered": 1} and poster.posted == [first, second]
    assert [(e["id"], e["error_type"]) for e in logs if e["event"] == "webhook_event_failed"] == [
        (first, "RuntimeError")]
    with get_db(hub_app).session() as session:
        assert {e.id: e.status for e in session.scalars(select(WebhookEvent))} == {first: "sending",
                                                                                 second: "delivered"}
