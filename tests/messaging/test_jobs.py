"""A bulk send followed as one job: ``GET /jobs/<id>`` says running, waiting or completed."""

from __future__ import annotations

from datetime import datetime, timedelta

from common.db import get_db, utcnow
from messaging import delivery, jobs, wiring
from tests.messaging.fakes import Recorder

NOTICE = {"payment_code": "6101", "amount_yuan": "50.00", "due_date": "2026-12-31", "department": "西安市交通局"}
PHONES = [{"phone": f"1380000{i:04d}"} for i in range(150)]


def bulk(payment, **extra) -> dict:
    response = payment.send({"template": "payment_notice", "variables": NOTICE, "recipients": PHONES, **extra})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_a_job_runs_while_deliveries_are_due_and_counts_add_up(payment, hub_app, monkeypatch):
    monkeypatch.setattr(hub_app.extensions["messaging"], "kick", lambda: None)  # no worker has run yet
    sent = bulk(payment, channels=["sms"])
    job = payment.get(f"/jobs/{sent['job_id']}").get_json()
    assert job | {"created_at": None} == {
        "job_id": sent["job_id"], "message_id": sent["message_id"], "status": "running", "total": 150,
        "batches": 2, "counts": {"queued": 150}, "waiting": 0, "next_attempt_at": None, "created_at": None,
        "completed_at": None}
    with get_db(hub_app).session() as session:
        recorder = Recorder()
        delivery.relay(session, recorder, wiring.delivery_settings(hub_app.config))
    assert [len(batch) for batch in recorder.batches] == [100, 50]  # the job's two batches
    assert payment.get(f"/jobs/{sent['job_id']}").get_json()["status"] == "running"  # in the workers' hands


def test_a_job_with_only_later_deliveries_left_is_waiting(payment, hub_app):
    at = (utcnow() + timedelta(hours=3)).replace(microsecond=0)
    sent = bulk(payment, channels=["sms"], scheduled_at=at.isoformat())
    job = payment.get(f"/jobs/{sent['job_id']}").get_json()
    assert (job["status"], job["waiting"], job["counts"]) == ("waiting", 150, {"queued": 150})
    assert datetime.fromisoformat(job["next_attempt_at"]) == at
    status = payment.get(f"/messages/{sent['message_id']}", query_string={"limit": 2}).get_json()
    assert [datetime.fromisoformat(r["next_attempt_at"]) for r in status["recipients"]] == [at, at]
    with get_db(hub_app).session() as session:  # once the time has come it runs
        assert jobs.job_status(session, "xsn-payment", sent["job_id"], now=at)["status"] == "running"


def test_a_finished_job_is_completed_and_another_apps_job_is_not_found(payment, licenses):
    sent = bulk(payment, channels=["inapp"])  # raw numbers cannot be reached in-app: all suppressed
    job = payment.get(f"/jobs/{sent['job_id']}").get_json()
    assert (job["status"], job["counts"], job["waiting"], job["next_attempt_at"]) == (
        "completed", {"suppressed": 150}, 0, None)
    assert job["completed_at"] is not None
    refused = licenses.get(f"/jobs/{sent['job_id']}")
    assert (refused.status_code, refused.get_json()["code"]) == (404, "job_not_found")
    assert payment.get("/jobs/job_nope").status_code == 404
