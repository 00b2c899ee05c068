"""The outbox's guarantees: stale and duplicate tasks do nothing, the sweeper recovers lost
ones, dead letters replay; and the people's rules: opt-outs, quiet hours, limits, digests."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from common.db import get_db, utcnow
from messaging import delivery, policy, receipts, wiring
from messaging.channels import Outcome
from messaging.channels.inapp import InboxChannel
from messaging.models import Delivery, InboxItem, Message, Preference, QuietHours, Recipient
from tests.messaging.fakes import Recorder

ISSUED = {"licence_name": "营业执照", "face_number": "61010020260001", "issuer": "西安市市场监督管理局"}


def queued_message(app, caller, monkeypatch, **extra):
    monkeypatch.setattr(app.extensions["messaging"], "kick", lambda: None)  # nothing dispatched yet
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}], **extra}
    response = caller.send(body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["message_id"]


def test_duplicate_and_stale_tasks_deliver_once(hub_app, licenses, monkeypatch):
    queued_message(hub_app, licenses, monkeypatch)
    settings = wiring.delivery_settings(hub_app.config)
    recorder = Recorder()
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, recorder, settings) == 1
        batch = recorder.batches[0]
        channels = {"inapp": InboxChannel()}
        assert delivery.deliver_batch(session, batch, channels, settings) == {"delivered": 1}
        assert delivery.deliver_batch(session, batch, channels, settings) == {"skipped": 1}  # broker redelivery
        assert delivery.deliver_batch(session, [(batch[0][0], 99)], channels, settings) == {"skipped": 1}
        assert session.scalar(select(func.count()).select_from(InboxItem)) == 1


def test_the_sweeper_requeues_what_a_dead_worker_held(hub_app, licenses, monkeypatch):
    message_id = queued_message(hub_app, licenses, monkeypatch)
    settings = wiring.delivery_settings(hub_app.config)
    lost = Recorder()
    with get_db(hub_app).session() as session:
        delivery.relay(session, lost, settings)  # the tasks are lost with their worker
        assert delivery.sweep(session, settings) == 0  # not stuck yet
        later = utcnow() + timedelta(seconds=settings.stuck_after + 1)
        assert delivery.sweep(session, settings, now=later) == 1
        retry = Recorder()
        assert delivery.relay(session, retry, settings, now=later) == 1
        (delivery_id, attempt), = retry.batches[0]
        assert attempt == 2
        channels = {"inapp": InboxChannel()}
        # The lost attempt's task turns up after all: it is stale and does nothing.
        assert delivery.deliver_batch(session, lost.batches[0], channels, settings) == {"skipped": 1}
        assert delivery.deliver_batch(session, retry.batches[0], channels, settings) == {"delivered": 1}
    assert licenses.get(f"/messages/{message_id}").get_json()["recipients"][0]["status"] == "delivered"


def test_dead_letters_can_be_replayed(hub_app, payment):
    hub_app.config["MESSAGING_RETRY_SCHEDULE"] = ""  # no retries: the first failure is final
    response = payment.send({"template": "payment_receipt", "channels": ["sms"],
                             "recipients": [{"phone": "13800001234"}],
                             "variables": {"payment_code": "1", "amount_yuan": "2", "receipt_number": "3"}})
    message_id = response.get_json()["message_id"]
    dead = payment.get("/dead-letters").get_json()
    assert len(dead) == 1 and dead[0]["message_id"] == message_id and "unreachable" in dead[0]["last_error"]
    assert payment.get(f"/messages/{message_id}").get_json()["status"] == "completed"
    replayed = payment.post(f"/dead-letters/{dead[0]['delivery_id']}/replay")
    assert replayed.status_code == 202
    # The carrier is still unreachable: it is dead again, after one more attempt.
    again = payment.get("/dead-letters").get_json()
    assert again[0]["attempt"] == dead[0]["attempt"] + 1
    assert payment.post(f"/dead-letters/{dead[0]['delivery_id'] + 100}/replay").status_code == 404


def test_opt_outs_are_honoured_except_for_critical(hub_app, licenses, person):
    zhang = person("person-zhang")
    assert zhang.client.put("/inbox/preferences", json={"category": "notice", "channel": "inapp", "enabled": False},
                            headers=zhang.headers()).status_code == 200
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-zhang"}]}
    skipped = licenses.get(f"/messages/{licenses.send(body).get_json()['message_id']}").get_json()
    assert skipped["recipients"][0] | {"updated_at": None} == {"seq": 0, "subject": "person-zhang", "phone":
                                                              "13800001234", "email": "zhang@example.cn",
                                                              "status": "suppressed", "channel": None,
                                                              "reason": "opted_out", "updated_at": None,
                                                              "next_attempt_at": None}
    critical = licenses.send({**body, "priority": "critical"}).get_json()
    assert licenses.get(f"/messages/{critical['message_id']}").get_json()["counts"] == {"delivered": 1}


def test_quiet_hours_hold_sms_until_morning(hub_app):
    window = (22 * 60, 7 * 60)
    late = datetime.fromisoformat("2026-12-01T23:30:00+08:00")
    assert policy.after_quiet_hours(late, window, "sms") == datetime.fromisoformat("2026-12-02T07:00:00+08:00")
    early = datetime.fromisoformat("2026-12-02T06:59:00+08:00")
    assert policy.after_quiet_hours(early, window, "email") == datetime.fromisoformat("2026-12-02T07:00:00+08:00")
    assert policy.after_quiet_hours(late, window, "inapp") == late  # the inbox is silent
    noon = datetime.fromisoformat("2026-12-02T12:00:00+08:00")
    assert policy.after_quiet_hours(noon, window, "sms") == noon
    assert policy.after_quiet_hours(noon, (11 * 60, 13 * 60), "sms") == datetime.fromisoformat(
        "2026-12-02T13:00:00+08:00")


def test_quiet_hours_apply_through_the_api(hub_app, licenses, person, monkeypatch):
    zhang = person("person-zhang")
    response = zhang.client.put("/inbox/quiet-hours", json={"start": "00:00", "end": "23:59"}, headers=zhang.headers())
    assert response.status_code == 200
    assert zhang.client.put("/inbox/quiet-hours", json={"start": "25:00", "end": "07:00"},
                            headers=zhang.headers()).get_json()["code"] == "invalid_quiet_hours"
    message_id = queued_message(hub_app, licenses, monkeypatch, channels=["sms"])
    with get_db(hub_app).session() as session:
        row = session.scalars(select(Delivery).where(Delivery.message_id == message_id)).one()
        assert row.next_attempt_at > utcnow()  # held (unless it is 23:59 China time right now)
        assert session.get(QuietHours, "person-zhang").end_minute == 23 * 60 + 59


def test_per_recipient_limit_is_a_429_for_one_recipient(hub_app, licenses):
    hub_app.extensions["messaging"].limits = type(hub_app.extensions["messaging"].limits)(recipient_limit="2/hour")
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]}
    assert [licenses.send(body).status_code for _ in range(3)] == [202, 202, 429]
    refused = licenses.send(body)
    assert refused.get_json()["code"] == "recipient_rate_limited" and refused.headers["Retry-After"]
    assert licenses.send({**body, "priority": "critical"}).status_code == 202


def test_per_app_limit_is_a_429(hub_app, licenses):
    hub_app.extensions["messaging"].limits = type(hub_app.extensions["messaging"].limits)(app_limit="1/minute")
    body = {"template": "licence_issued", "variables": ISSUED, "recipients": [{"subject": "person-li"}]}
    assert licenses.send(body).status_code == 202
    assert licenses.send(body).get_json()["code"] == "rate_limited"


def test_low_priority_messages_with_one_digest_key_arrive_as_one(hub_app, licenses, person, monkeypatch):
    for n in range(3):
        queued_message(hub_app, licenses, monkeypatch, priority="low", digest_key="daily",
                       variables={**ISSUED, "face_number": f"F{n}"})
    queued_message(hub_app, licenses, monkeypatch, priority="low", digest_key="other")
    settings = wiring.delivery_settings(hub_app.config)
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, Recorder(), settings) == 0  # held for the window
        later = utcnow() + timedelta(seconds=601)
        recorder = Recorder()
        assert delivery.relay(session, recorder, settings, now=later, limit=1) == 1  # the first of the group
        counts = delivery.deliver_batch(session, recorder.batches[0], {"inapp": InboxChannel()}, settings)
        assert counts == {"delivered": 1}
        assert session.scalar(select(func.count()).where(Delivery.status == "delivered")) == 3
    items = person("person-zhang").get("/inbox").get_json()
    assert len(items) == 1 and items[0]["title"].startswith("3 条通知")
    assert all(f"F{n}" in items[0]["body"] for n in range(3))


def test_a_digest_lost_while_sending_is_swept_back_whole(hub_app, licenses, monkeypatch):
    """The deliveries a digest took with it are claimed as its own (``sending``, the claim's
    time): a worker lost mid-send leaves none of them stuck for the sweeper to miss."""
    for n in range(3):
        queued_message(hub_app, licenses, monkeypatch, priority="low", digest_key="daily",
                       variables={**ISSUED, "face_number": f"F{n}"})
    settings = wiring.delivery_settings(hub_app.config)
    later = utcnow() + timedelta(seconds=601)
    recorder = Recorder()
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, recorder, settings, now=later, limit=1) == 1

    def dies(session, channels, prepared):
        raise SystemExit("the worker died mid-send")

    monkeypatch.setattr(delivery, "_send", dies)
    with get_db(hub_app).session() as session, pytest.raises(SystemExit):
        delivery.deliver_batch(session, recorder.batches[0], {"inapp": InboxChannel()}, settings, now=lambda: later)
    with get_db(hub_app).session() as session:
        assert session.scalars(select(Delivery.status)).all() == ["sending"] * 3
        assert delivery.sweep(session, settings, now=later + timedelta(seconds=settings.stuck_after + 1)) == 3


def test_preferences_are_listed(hub_app, person):
    li = person("person-li")
    li.client.put("/inbox/preferences", json={"category": "transaction", "channel": "sms", "enabled": False},
                  headers=li.headers())
    assert li.get("/inbox/preferences").get_json() == [{"category": "transaction", "channel": "sms",
                                                         "enabled": False}]
    with get_db(hub_app).session() as session:
        assert session.scalar(select(func.count()).select_from(Preference)
                              .where(Preference.subject == "person-li")) == 1


def test_concurrent_relays_never_both_claim_a_row(hub_app, payment, monkeypatch):
    """SQLite has no SKIP LOCKED: the conditional claim with RETURNING is what keeps two relays apart."""
    import threading

    monkeypatch.setattr(hub_app.extensions["messaging"], "kick", lambda: None)
    payment.send({"template": "payment_receipt", "channels": ["email"],
                  "variables": {"payment_code": "1", "amount_yuan": "2", "receipt_number": "3"},
                  "recipients": [{"email": f"p{i}@example.cn"} for i in range(300)]})
    settings = wiring.delivery_settings(hub_app.config)
    recorders = [Recorder(), Recorder()]
    barrier = threading.Barrier(2)

    def run(recorder):
        barrier.wait()
        for _ in range(3):
            with get_db(hub_app).session() as session:
                delivery.relay(session, recorder, settings, limit=120)

    threads = [threading.Thread(target=run, args=(r,)) for r in recorders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = [pair for r in recorders for batch in r.batches for pair in batch]
    assert len(handed) == len({d for d, _a in handed}) == 300
    with get_db(hub_app).session() as session:
        assert {(d.id, d.attempt) for d in session.scalars(select(Delivery))} == set(handed)


def test_a_scheduled_message_waits_for_its_time(hub_app, licenses, monkeypatch):
    at = utcnow() + timedelta(hours=2)
    message_id = queued_message(hub_app, licenses, monkeypatch, scheduled_at=at.isoformat())
    settings = wiring.delivery_settings(hub_app.config)
    with get_db(hub_app).session() as session:
        row = session.scalars(select(Delivery).where(Delivery.message_id == message_id)).one()
        assert abs((row.next_attempt_at - at).total_seconds()) < 1
        assert delivery.relay(session, Recorder(), settings) == 0
        assert delivery.relay(session, Recorder(), settings, now=at + timedelta(seconds=1)) == 1
    naive = licenses.send({"template": "licence_issued", "variables": ISSUED, "scheduled_at": "2026-12-31T08:00:00",
                           "recipients": [{"subject": "person-zhang"}]})
    assert naive.status_code == 422  # a time without its zone is ambiguous


def test_a_fallback_channel_waits_for_the_end_of_quiet_hours_unless_critical(hub_app, licenses, monkeypatch):
    with get_db(hub_app).session() as session:
        session.add(QuietHours(subject="person-zhang", start_minute=22 * 60, end_minute=7 * 60))
        session.commit()
    late = datetime.fromisoformat("2026-12-01T23:00:00+08:00")
    for priority, due in (("normal", datetime.fromisoformat("2026-12-02T07:00:00+08:00")), ("critical", late)):
        message_id = queued_message(hub_app, licenses, monkeypatch, channels=["inapp", "sms"], priority=priority)
        with get_db(hub_app).session() as session:
            first = session.scalars(select(Delivery).where(Delivery.message_id == message_id)).one()
            recipient = session.get(Recipient, first.recipient_id)
            delivery.fail_delivery(session, first, recipient, session.get(Message, message_id), "gone", late)
            session.commit()
            sms = session.scalars(select(Delivery).where(Delivery.message_id == message_id,
                                                         Delivery.channel == "sms")).one()
            assert sms.next_attempt_at == due, priority  # the SMS is not sent at 23:00
            assert (recipient.status, recipient.reason) == (
                "queued", "quiet_hours" if priority == "normal" else None)


def test_two_copies_of_a_receipt_at_once_apply_once(hub_app, licenses, monkeypatch):
    """Carriers repeat receipts: the second copy, run while the first is held after its check,
    is a duplicate (both used to read the delivery "sent" and both finished the recipient)."""
    from sqlalchemy import update

    from tests.support.races import paused_after_check

    message_id = queued_message(hub_app, licenses, monkeypatch)
    with get_db(hub_app).session() as session:
        session.execute(update(Delivery).where(Delivery.message_id == message_id)
                        .values(status="sent", provider_id="biz-race"))
        session.commit()

    def receipt():
        with get_db(hub_app).session() as own:
            return receipts.apply_receipt(own, "biz-race", True, None)

    first, second = paused_after_check(monkeypatch, receipts, "finish_recipient", receipt, receipt,
                                       get_db(hub_app).engine)
    assert (first, second) == ("applied", "duplicate")
    with get_db(hub_app).session() as session:
        assert session.scalars(select(Delivery.status).where(Delivery.message_id == message_id)).all() == [
            "delivered"]


def test_a_receipt_with_nothing_to_apply_lets_go_of_its_lock_at_once(hub_app, licenses, monkeypatch):
    """The receipts view goes on after an unknown or repeated receipt (other reports, the relay's
    kick, which writes in a session of its own in the same thread): that write must not wait for
    a lock the receipt no longer needs (on SQLite the database's one write lock)."""
    from sqlalchemy import update

    message_id = queued_message(hub_app, licenses, monkeypatch)
    with get_db(hub_app).session() as session:
        session.execute(update(Delivery).where(Delivery.message_id == message_id)
                        .values(status="delivered", provider_id="biz-done"))
        session.commit()
    with get_db(hub_app).session() as held:
        assert receipts.apply_receipt(held, "biz-unknown", True, None) == "unknown"
        assert receipts.apply_receipt(held, "biz-done", True, None) == "duplicate"
        with get_db(hub_app).session() as other:  # the same thread, while ``held`` is still open
            other.execute(update(Delivery).where(Delivery.message_id == message_id).values(attempt=7),
                          execution_options={"synchronize_session": False})
            other.commit()


class CountingChannel:
    """An SMS-like channel that cannot deduplicate: every call is one more message to the person."""

    commit_each = True
    name = "sms"

    def __init__(self, commit_each: bool = True) -> None:
        self.sent: list[tuple[int, int]] = []
        self.commit_each = commit_each

    def send(self, session, item):
        self.sent.append((item.delivery_id, item.attempt))
        return Outcome("sent", provider_id=f"biz-{item.delivery_id}-{item.attempt}")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("commit_each", [True, False], ids=["claimed-one-by-one", "claimed-as-a-batch"])
def test_two_copies_of_a_delivery_task_at_once_send_once(hub_app, licenses, monkeypatch, commit_each):
    """A broker redelivery (or a retry) of a task whose first run is slow: the copy run while
    the first is held after its check does nothing (both used to pass the attempt check and
    both sent the SMS)."""
    from tests.support.races import paused_after_check

    queued_message(hub_app, licenses, monkeypatch, channels=["sms"])
    settings = wiring.delivery_settings(hub_app.config)
    recorder = Recorder()
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, recorder, settings) == 1
    batch = recorder.batches[0]
    channel = CountingChannel(commit_each)

    def task():
        with get_db(hub_app).session() as own:
            return delivery.deliver_batch(own, batch, {"sms": channel}, settings)

    with capture_logs() as logs:
        first, second = paused_after_check(monkeypatch, delivery, "_send", task, task, get_db(hub_app).engine)
    assert (first, second) == ({"sent": 1}, {"skipped": 1})
    assert channel.sent == batch
    assert [(e["log_level"], e["reason"]) for e in logs if e["event"] == "attempt_not_claimed"] == [
        ("info", "another copy of this task claimed it")]
    with get_db(hub_app).session() as session:
        assert [(d.status, d.attempt) for d in session.scalars(select(Delivery))] == [("sent", 1)]


def test_a_delivery_lost_while_sending_is_swept_back_to_the_queue(hub_app, licenses, monkeypatch):
    """A claimed attempt whose worker died mid-send is not redone by a redelivered task (it
    cannot know whether the send went out): the sweeper re-queues it as a new attempt."""
    queued_message(hub_app, licenses, monkeypatch, channels=["sms"])
    settings = wiring.delivery_settings(hub_app.config)
    recorder = Recorder()
    with get_db(hub_app).session() as session:
        delivery.relay(session, recorder, settings)
    batch = recorder.batches[0]

    def dies(session, channels, prepared):
        raise SystemExit("the worker died mid-send")

    with monkeypatch.context() as patched, get_db(hub_app).session() as session, pytest.raises(SystemExit):
        patched.setattr(delivery, "_send", dies)
        delivery.deliver_batch(session, batch, {"sms": CountingChannel()}, settings)
    channel = CountingChannel()
    with get_db(hub_app).session() as session:
        assert delivery.deliver_batch(session, batch, {"sms": channel}, settings) == {"skipped": 1}
        later = utcnow() + timedelta(seconds=settings.stuck_after + 1)
        assert delivery.sweep(session, settings, now=later) == 1
        retry = Recorder()
        assert delivery.relay(session, retry, settings, now=later) == 1
        assert delivery.deliver_batch(session, retry.batches[0], {"sms": channel}, settings) == {"sent": 1}
    assert channel.sent == [(batch[0][0], 2)]


def test_an_sms_still_waiting_its_turn_when_swept_is_not_sent_twice(hub_app, licenses, monkeypatch):
    """A slow carrier makes a batch of SMS outlast ``stuck_after``: the sweeper re-queues what the
    worker has not sent yet and the new attempt sends it. Each SMS is claimed only when its turn
    comes, so the slow worker finds those rows moved on and skips them (claimed with the batch,
    they were sent by both)."""
    for _ in range(2):
        queued_message(hub_app, licenses, monkeypatch, channels=["sms"])
    settings = wiring.delivery_settings(hub_app.config)
    recorder = Recorder()
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, recorder, settings) == 2
    (first, _), (second, _) = batch = recorder.batches[0]
    later = utcnow() + timedelta(seconds=settings.stuck_after + 1)
    retry = Recorder()
    channel = CountingChannel()

    meanwhile: dict = {}

    class SlowCarrier(CountingChannel):
        def send(self, session, item):
            if item.delivery_id == first:  # meanwhile: the sweeper, the relay, another worker
                with get_db(hub_app).session() as other:
                    meanwhile["second"] = other.get(Delivery, second).status
                    meanwhile["swept"] = delivery.sweep(other, settings, now=later)
                    delivery.relay(other, retry, settings, now=later)
                    for handed in retry.batches:
                        delivery.deliver_batch(other, handed, {"sms": channel}, settings)
            return channel.send(session, item)

    with get_db(hub_app).session() as session:
        # The first SMS is claimed at ``later``: it is being sent, not stuck.
        counts = delivery.deliver_batch(session, batch, {"sms": SlowCarrier()}, settings, now=lambda: later)
    assert meanwhile == {"second": "dispatched", "swept": 1}  # not claimed before its turn
    assert counts == {"sent": 1, "skipped": 1}
    assert sorted(channel.sent) == [(first, 1), (second, 2)]


@pytest.mark.parametrize("commit_each", [True, False], ids=["recorded-one-by-one", "recorded-as-a-batch"])
def test_a_send_that_outlasts_stuck_after_does_not_record_onto_the_new_attempt(hub_app, licenses, monkeypatch,
                                                                              commit_each):
    """A send slower than ``stuck_after`` (an SMTP batch of 100): meanwhile the sweeper re-queues
    the row and a new attempt delivers it. The slow worker's outcome is dropped, logged; it used
    to be written onto the row and counted the recipient off its message a second time."""
    message_id = queued_message(hub_app, licenses, monkeypatch, channels=["sms"])
    settings = wiring.delivery_settings(hub_app.config)
    recorder, retry = Recorder(), Recorder()
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, recorder, settings) == 1
    batch = recorder.batches[0]
    later = utcnow() + timedelta(seconds=settings.stuck_after + 1)
    meanwhile: dict = {}

    class Delivering(CountingChannel):
        def send(self, session, item):
            super().send(session, item)
            return Outcome("delivered", provider_id=f"biz-{item.delivery_id}-{item.attempt}")

    channel = Delivering(commit_each)

    class Slow(Delivering):
        def send(self, session, item):
            with get_db(hub_app).session() as other:  # meanwhile: the sweeper, the relay, another worker
                meanwhile["swept"] = delivery.sweep(other, settings, now=later)
                delivery.relay(other, retry, settings, now=later)
                meanwhile["retry"] = delivery.deliver_batch(other, retry.batches[0], {"sms": channel}, settings)
            return channel.send(session, item)

    with capture_logs() as logs, get_db(hub_app).session() as session:
        counts = delivery.deliver_batch(session, batch, {"sms": Slow(commit_each)}, settings)
    assert meanwhile == {"swept": 1, "retry": {"delivered": 1}}
    assert channel.sent == [(batch[0][0], 2), (batch[0][0], 1)]
    with get_db(hub_app).session() as session:
        message = session.get(Message, message_id)
        assert (message.status, message.pending_count) == ("completed", 0)  # was -1: counted twice
        assert [(d.status, d.attempt, d.provider_id) for d in session.scalars(select(Delivery))] == [
            ("delivered", 2, f"biz-{batch[0][0]}-2")]
    assert counts == {"dropped": 1}
    assert [(e["log_level"], e["attempt"], e["outcome"], e["reason"]) for e in logs
            if e["event"] == "outcome_dropped"] == [("info", 1, "delivered", "a later attempt has it")]


def test_an_sms_whose_outcome_cannot_be_recorded_does_not_stop_the_batch(hub_app, licenses, monkeypatch):
    """Recording the first SMS's outcome raises (a bug, a lost connection): it is rolled back and
    logged by type, and the next SMS is still sent; the exception used to end the batch, and the
    rest waited out ``stuck_after`` as ``dispatched``."""
    for _ in range(2):
        queued_message(hub_app, licenses, monkeypatch, channels=["sms"])
    settings = wiring.delivery_settings(hub_app.config)
    recorder = Recorder()
    with get_db(hub_app).session() as session:
        assert delivery.relay(session, recorder, settings) == 2
    (first, _), (second, _) = batch = recorder.batches[0]
    record = delivery._record

    def breaks_on_first(session, prepared, *args):
        if prepared.delivery.id == first:
            raise RuntimeError("lost connection to 13800001234")
        return record(session, prepared, *args)

    monkeypatch.setattr(delivery, "_record", breaks_on_first)
    channel = CountingChannel()
    with capture_logs() as logs, get_db(hub_app).session() as session:
        counts = delivery.deliver_batch(session, batch, {"sms": channel}, settings)
    assert counts == {"error": 1, "sent": 1}
    assert channel.sent == batch
    failed = [e for e in logs if e["event"] == "delivery_item_failed"]
    assert [(e["id"], e["error_type"]) for e in failed] == [(first, "RuntimeError")]
    assert "13800001234" not in repr(failed)
    with get_db(hub_app).session() as session:
        # The first waits for the sweeper in ``sending`` (whether it went out is unknown).
        assert {d.id: d.status for d in session.scalars(select(Delivery))} == {first: "sending", second: "sent"}
