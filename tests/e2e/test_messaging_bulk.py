"""A templated bulk send to the 1,000 demo recipients on the real processes, through the gateway
(issue 12 "done when": "an app sends a templated bulk message to 1,000 demo recipients with quiet
hours and preferences honoured").

The demo app ``xsn-demo-sender`` gets a client-credentials token, sends ``appointment_reminder``
once to all of ``common.demo_recipients`` (SMS first, then in-app), follows the job through
``GET /messaging/jobs/<id>`` and checks each kind of recipient where its message lands: the
carrier simulator for SMS, the hub's inbox table for in-app. The hub decides quiet hours on its
own clock (Beijing time), so the test does not fake "now": of the two seeded quiet-hours groups
(21:00–09:00 and 09:00–21:00) exactly one is inside its window at any moment, and the test
works out which from the current time, keeping clear of the two boundaries.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import text

from common import demo_recipients
from common.demo_recipients import QUIET_HOURS
from common.values.times import CHINA
from messaging.smtp_sink import read_mailbox
from tests.support.suite import client_token, service_database, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TEMPLATE = "SMS_XSN_APPOINTMENT_REMINDER"
VARIABLES = {"name": "市民", "hall": "雁塔区政务服务中心", "time": "12月8日 上午9:30"}


def _clear_of_quiet_hours_boundaries(margin: timedelta = timedelta(minutes=3)) -> datetime:
    """Now, at least ``margin`` after a quiet-hours boundary and ``margin + 3 min`` (the test's run) before the
    next one (waits if not)."""
    while True:
        now = datetime.now(CHINA)
        edges = [now.replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0) + timedelta(days=day)
                 for minute in {w[0] for w in QUIET_HOURS.values()} for day in (-1, 0, 1)]
        if all(not (edge - margin - timedelta(minutes=3) <= now <= edge + margin) for edge in edges):
            return now
        time.sleep(10)


def _window_end(kind: str, now: datetime) -> datetime:
    """When the quiet hours of ``kind``, which cover ``now``, end (UTC)."""
    end = QUIET_HOURS[kind][1]
    local = now.astimezone(CHINA).replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    return (local if local > now else local + timedelta(days=1)).astimezone(UTC)


def _send(gateway: str, body: dict, headers: dict) -> dict:
    """POST the send as an app should: on a gateway timeout (a big send on a loaded machine can
    outlast the gateway's 30 s), repeat it with the same ``Idempotency-Key``; the hub answers the
    repeat with the one message, however the two overlap."""
    for _attempt in range(4):
        answer = requests.post(f"{gateway}/messaging/messages", json=body, headers=headers, timeout=60)
        if answer.status_code != 504:
            assert answer.status_code in (200, 202), answer.text
            return answer.json()
    raise AssertionError("the hub did not accept the bulk send in four tries")


def _sms_by_phone(simulator: str) -> Counter:
    arrived = requests.get(f"{simulator}/sim/messages", timeout=30).json()
    return Counter(m["phone"] for m in arrived if m["template_code"] == TEMPLATE and m["phone"].startswith("199"))


def test_a_templated_bulk_send_honours_preferences_and_quiet_hours(suite):
    gateway = suite.base_url("gateway")
    simulator = f"http://127.0.0.1:{suite.ports['sms-simulator']}"
    people = demo_recipients.recipients()
    token = client_token(suite, "xsn-demo-sender", scope="messaging:send", resource="xsn:messaging")
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert not _sms_by_phone(simulator)  # nothing for them yet: every count below is this send's

    sent_at = _clear_of_quiet_hours_boundaries()
    held = demo_recipients.quiet_kind_at(sent_at)
    body = {"template": "appointment_reminder", "variables": VARIABLES, "category": "notice",
            "channels": ["sms", "inapp"], "recipients": [{"subject": p.subject} for p in people]}
    key = f"bulk-e2e-{secrets.token_hex(4)}"
    started = time.monotonic()
    accepted = _send(gateway, body, {**auth, "Idempotency-Key": key})
    job_id, message_id = accepted["job_id"], accepted["message_id"]
    assert job_id and job_id.startswith("job_")
    accept_seconds = time.monotonic() - started

    def settled():
        job = requests.get(f"{gateway}/messaging/jobs/{job_id}", headers=auth, timeout=30)
        assert job.status_code == 200, job.text
        return job.json() if job.json()["status"] != "running" else None

    job = wait_for(settled, 240, "the job leaving 'running'", interval=1)
    by_kind = Counter(p.kind for p in people)
    free = "quiet_day" if held == "quiet_night" else "quiet_night"
    # SMS for everyone reachable by it and awake; in-app for those who turned SMS off; nothing for
    # those who turned both off; the group inside its quiet hours waits for the window's end.
    assert job["status"] == "waiting", job
    assert job["total"] == len(people) == sum(job["counts"].values())
    assert job["batches"] == 10
    assert job["counts"] == {"delivered": by_kind["plain"] + by_kind[free] + by_kind["no_sms"],
                             "suppressed": by_kind["no_notice"], "queued": by_kind[held]}, job
    assert job["waiting"] == by_kind[held]
    assert datetime.fromisoformat(job["next_attempt_at"]) == _window_end(held, sent_at)

    recipients = []
    for offset in (0, 500):
        page = requests.get(f"{gateway}/messaging/messages/{message_id}", headers=auth, timeout=30,
                            params={"offset": offset, "limit": 500})
        assert page.status_code == 200, page.text
        recipients += page.json()["recipients"]
    assert [r["seq"] for r in recipients] == list(range(len(people)))
    for person, status in zip(people, recipients, strict=True):
        assert status["subject"] == person.subject
        if person.kind in ("plain", free):
            assert (status["status"], status["channel"], status["phone"]) == ("delivered", "sms", person.mobile)
        elif person.kind == "no_sms":
            assert (status["status"], status["channel"]) == ("delivered", "inapp"), status
        elif person.kind == "no_notice":
            assert (status["status"], status["reason"]) == ("suppressed", "opted_out"), status
        else:
            assert (status["status"], status["reason"]) == ("queued", "quiet_hours"), status
            assert datetime.fromisoformat(status["next_attempt_at"]) == _window_end(held, sent_at)

    # At the carrier: exactly one SMS to each awake SMS recipient, none to anyone else.
    sms = _sms_by_phone(simulator)
    assert sms == Counter({p.mobile: 1 for p in people if p.kind in ("plain", free)})
    # In the inbox: exactly one item for each who turned SMS off, none for anyone else.
    with service_database(suite, "messaging") as engine, engine.connect() as db:
        inbox = Counter(subject for (subject,) in db.execute(text(
            "SELECT i.subject FROM inbox_items i JOIN deliveries d ON d.id = i.delivery_id "
            "WHERE d.message_id = :m"), {"m": message_id}))
        held_rows = db.execute(text("SELECT d.channel, d.status, d.attempt FROM deliveries d JOIN recipients r "
                                    "ON r.id = d.recipient_id WHERE d.message_id = :m AND r.reason = 'quiet_hours'"),
                               {"m": message_id}).all()
    assert inbox == Counter({p.subject: 1 for p in people if p.kind == "no_sms"})
    assert sorted(held_rows) == [("sms", "queued", 0)] * by_kind[held]  # never tried, not lost

    # A repeat of the request is the same message, nothing sent again.
    again = requests.post(f"{gateway}/messaging/messages", json=body, timeout=60,
                          headers={**auth, "Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["message_id"] == message_id
    with service_database(suite, "messaging") as engine, engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM messages WHERE idempotency_key = :k"), {"k": key}).scalar() == 1

    # A critical message to someone inside quiet hours is not held.
    sleeper = next(p for p in people if p.kind == held)
    urgent = requests.post(f"{gateway}/messaging/messages", headers=auth, timeout=30, json={
        "template": "appointment_reminder", "variables": VARIABLES, "category": "notice", "priority": "critical",
        "channels": ["sms"], "recipients": [{"subject": sleeper.subject}]})
    assert urgent.status_code == 202, urgent.text
    assert urgent.json()["job_id"] is None  # one recipient: no job
    wait_for(lambda: requests.get(f"{simulator}/sim/messages", params={"phone": sleeper.mobile}, timeout=10).json(),
             60, "the critical SMS at the carrier", interval=1)
    status = requests.get(f"{gateway}/messaging/messages/{urgent.json()['message_id']}", headers=auth,
                          timeout=30).json()
    assert status["recipients"][0]["next_attempt_at"] is None and status["recipients"][0]["reason"] is None

    after = _sms_by_phone(simulator)
    assert after == sms + Counter({sleeper.mobile: 1})  # the critical one only; still nothing doubled
    print(f"bulk send: accepted in {accept_seconds:.1f}s, job settled in {time.monotonic() - started:.1f}s")


def _mail_by_address(suite) -> Counter:
    """Each demo address as often as the SMTP sink received a mail for it (one stored mail may
    carry many recipients: the hub sends identical content in one SMTP transaction)."""
    found: Counter = Counter()
    mailbox = suite.var_dir / "mail"
    for mail in read_mailbox(mailbox) if mailbox.exists() else []:
        found.update(a.strip() for a in str(mail["X-Envelope-To"]).split(",") if a.strip().startswith("demo-"))
    return found


def test_a_bulk_send_by_subject_reaches_the_demo_recipients_by_e_mail(suite):
    """Identity holds an e-mail address for each demo recipient, so a send by subject on the e-mail
    channel reaches them at the SMTP sink: everyone once, except the quiet-hours group asleep now
    (held, as for SMS); the ``notice`` opt-outs are for SMS and in-app only, so they get it."""
    gateway = suite.base_url("gateway")
    people = demo_recipients.recipients()
    token = client_token(suite, "xsn-demo-sender", scope="messaging:send", resource="xsn:messaging")
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert not _mail_by_address(suite)

    sent_at = _clear_of_quiet_hours_boundaries()
    held = demo_recipients.quiet_kind_at(sent_at)
    body = {"template": "appointment_reminder", "variables": VARIABLES, "category": "notice",
            "channels": ["email"], "recipients": [{"subject": p.subject} for p in people]}
    started = time.monotonic()
    accepted = _send(gateway, body, {**auth, "Idempotency-Key": f"bulk-mail-e2e-{secrets.token_hex(4)}"})
    accept_seconds = time.monotonic() - started

    def settled():
        job = requests.get(f"{gateway}/messaging/jobs/{accepted['job_id']}", headers=auth, timeout=30)
        assert job.status_code == 200, job.text
        return job.json() if job.json()["status"] != "running" else None

    job = wait_for(settled, 240, "the e-mail job leaving 'running'", interval=1)
    awake = [p for p in people if p.kind != held]
    assert job["counts"] == {"delivered": len(awake), "queued": len(people) - len(awake)}, job
    mail = wait_for(lambda: (found := _mail_by_address(suite)) and sum(found.values()) >= len(awake) and found,
                    60, "every awake recipient's mail at the sink", interval=1)
    assert mail == Counter({p.email: 1 for p in awake})  # each once, nobody asleep, nothing else
    page = requests.get(f"{gateway}/messaging/messages/{accepted['message_id']}", headers=auth, timeout=30,
                        params={"offset": 0, "limit": 10}).json()["recipients"]
    assert {(r["channel"], r["email"]) for r in page if r["status"] == "delivered"} == \
        {("email", p.email) for p in people[:10] if p.kind != held}
    print(f"bulk e-mail send: accepted in {accept_seconds:.1f}s, job settled in {time.monotonic() - started:.1f}s")
