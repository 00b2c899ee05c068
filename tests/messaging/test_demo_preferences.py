"""The demo recipients' preferences in the hub's seed, and how a bulk send to them comes out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from common import demo_recipients
from common.db import get_db
from messaging import jobs, policy
from messaging.directory import Contact, MemoryDirectory
from messaging.models import Preference, QuietHours
from messaging.seed import seed_demo_preferences

PEOPLE = demo_recipients.recipients()


def test_seeded_opt_outs_and_quiet_hours_follow_the_documented_mix(hub_app):
    with get_db(hub_app).session() as session:
        subjects = [p.subject for p in PEOPLE]
        outs = policy.opt_outs(session, subjects, "notice")
        quiet = policy.quiet_hours(session, subjects)
        assert seed_demo_preferences(session) == 0  # the fixture seeded; again adds nothing
        assert session.scalar(select(func.count()).select_from(Preference)) == 300
        assert session.scalar(select(func.count()).select_from(QuietHours)) == 200
    for person in PEOPLE:
        assert outs.get(person.subject, set()) == {"no_sms": {"sms"}, "no_notice": {"sms", "inapp"}}.get(
            person.kind, set()), person
        assert quiet.get(person.subject) == demo_recipients.QUIET_HOURS.get(person.kind), person


def test_exactly_one_quiet_group_is_inside_its_window():
    for text, held in (("2026-12-07T08:59:00+08:00", "quiet_night"), ("2026-12-07T09:00:00+08:00", "quiet_day"),
                       ("2026-12-07T20:59:00+08:00", "quiet_day"), ("2026-12-07T21:00:00+08:00", "quiet_night"),
                       ("2026-12-07T02:00:00+08:00", "quiet_night")):
        moment = datetime.fromisoformat(text)
        assert demo_recipients.quiet_kind_at(moment) == held
        for kind, window in demo_recipients.QUIET_HOURS.items():
            assert (policy.after_quiet_hours(moment, window, "sms") > moment) == (kind == held), (text, kind)


def test_a_bulk_send_to_the_demo_recipients_as_a_job(hub_app):
    """What the end-to-end test checks on the real processes, here on one clock: 14:00 Beijing."""
    from messaging import sending

    hub_app.extensions["messaging"].directory = MemoryDirectory(
        [Contact(p.subject, p.name, p.mobile, None) for p in PEOPLE])
    now = datetime.fromisoformat("2026-12-07T14:00:00+08:00")
    body = {"template": "appointment_reminder", "variables": {"name": "市民", "hall": "大厅", "time": "9:30"},
            "channels": ["sms", "inapp"], "recipients": [{"subject": p.subject} for p in PEOPLE]}
    with get_db(hub_app).session() as session:
        accepted = sending.accept_message(session, client_id="xsn-demo-sender", body=body, idempotency_key=None,
                                          directory=hub_app.extensions["messaging"].directory,
                                          limiter=hub_app.extensions["xsn_ratelimits"],
                                          limits=hub_app.extensions["messaging"].limits, now=now)
        message = accepted.message
        job = jobs.job_status(session, "xsn-demo-sender", message.job_id, now=now)
        assert job["status"] == "running" and job["total"] == 1000 and job["batches"] == 10
        assert job["counts"] == {"queued": 900, "suppressed": 100}
        assert job["waiting"] == 100  # the day sleepers, held until 21:00 Beijing
        assert job["next_attempt_at"] == datetime.fromisoformat("2026-12-07T21:00:00+08:00")
        page = {r["subject"]: r for r in sending.recipients_page(session, message.id, 0, 500)
                + sending.recipients_page(session, message.id, 500, 500)}
        for person in PEOPLE:
            row = page[person.subject]
            if person.kind == "quiet_day":
                assert (row["reason"], row["next_attempt_at"]) == ("quiet_hours", job["next_attempt_at"])
            elif person.kind == "no_notice":
                assert (row["status"], row["reason"], row["next_attempt_at"]) == ("suppressed", "opted_out", None)
            else:
                assert (row["status"], row["reason"], row["next_attempt_at"]) == ("queued", None, now)


def test_the_demo_bulk_body_names_every_demo_recipient_once():
    import json

    from click.testing import CliRunner

    from messaging.cli import cli

    result = CliRunner().invoke(cli, ["demo-bulk-body", "--channels", "sms, inapp"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["template"], body["category"], body["channels"]) == ("appointment_reminder", "notice",
                                                                       ["sms", "inapp"])
    assert body["recipients"] == [{"subject": p.subject} for p in PEOPLE]
    assert "inside quiet hours: the quiet_" in result.stderr
