"""Bulk jobs resumed: a runner holds its job by a lease; a job whose runner crashed, was killed or
lost its lease is finished by the next run without issuing or signing a licence twice."""

from __future__ import annotations

import pytest

from licenses.bulk import jobs
from licenses.models import BulkJob, Licence
from tests.licenses.bulk.job_steps import open_job, residents_csv, run_until_killed, upload


def test_a_crash_mid_job_resumes_without_issuing_twice(h, app, node):
    from common.db import get_db
    from common.peers.seal_client import SealUnavailable

    job_id = upload(h, residents_csv(25)).get_json()["id"]
    seal = node["deps"].seal
    seal.fail_next = 0
    with get_db(app).session() as session:
        job = session.get(BulkJob, job_id)
        jobs.run_job(session, node["deps"], job, batch=10, max_seconds=0.0001)  # stops after one batch
        assert job.issued == 10 and job.status == "running"
        seal.fail_next = 1
        with pytest.raises(SealUnavailable):
            jobs.run_job(session, node["deps"], job, batch=10)
        assert job.issued == 10 and job.last_error
    # the failed chunk wrote no licence (its frame is kept in the job): resuming rebuilds it
    resumed = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (resumed["status"], resumed["issued"]) == ("done", 25)
    assert h.count(Licence) == 25
    identifiers = {lic["identifier"] for lic in h.client.get("/licences?limit=1000", headers=h.police).get_json()}
    assert len(identifiers) == 25
    assert len(seal.signed) == 25


def test_a_killed_runner_holds_the_job_until_its_lease_lapses_then_it_resumes(h, app, node, monkeypatch):
    from datetime import timedelta

    from common.db import utcnow

    job_id = upload(h, residents_csv(25)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch
    calls = []

    def dies_after_signing(*args, **kwargs):  # the process is killed once the seal node has signed
        calls.append(original(*args, **kwargs))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return calls[-1]

    monkeypatch.setattr(seal, "sign_batch", dies_after_signing)
    run_until_killed(app, node, job_id, batch=10)
    monkeypatch.setattr(seal, "sign_batch", original)
    busy = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police)
    assert busy.status_code == 409 and busy.get_json()["code"] == "bulk_job_running"
    session, job = open_job(app, job_id)
    assert (job.issued, job.status) == (10, "running")
    job.lease_until = utcnow() - timedelta(seconds=1)  # the dead runner's lease lapses
    session.commit()
    session.close()
    resumed = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (resumed["status"], resumed["issued"], resumed["pending"]) == ("done", 25, 0)
    assert h.count(Licence) == 25
    assert len(seal.signed) == 25  # the interrupted batch was replayed by the seal node, not signed again
    from licenses.models import LicenceEvent, Notification
    assert h.count(LicenceEvent) == 25 and h.count(Notification) <= 25


def test_a_runner_that_lost_its_lease_does_not_mark_the_batch_again(h, app, node, monkeypatch):
    """A runner paused past its lease: another runner finished the job meanwhile."""
    from datetime import timedelta

    from common.db import utcnow
    from licenses.models import LicenceEvent

    job_id = upload(h, residents_csv(5)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch

    def paused_while_another_runs(*args, **kwargs):
        signatures = original(*args, **kwargs)
        monkeypatch.setattr(seal, "sign_batch", original)
        other, other_job = open_job(app, job_id)
        other_job.lease_until = utcnow() - timedelta(seconds=1)
        other.commit()
        jobs.run_job(other, node["deps"], other_job, batch=10)  # takes the lapsed lease, finishes
        other.close()
        return signatures

    monkeypatch.setattr(seal, "sign_batch", paused_while_another_runs)
    session, job = open_job(app, job_id)
    jobs.run_job(session, node["deps"], job, batch=10)
    session.close()
    assert h.count(Licence) == 5 and h.count(LicenceEvent) == 5
    assert h.client.get(f"/bulk-jobs/{job_id}", headers=h.police).get_json()["issued"] == 5


def test_with_two_batches_in_flight_a_killed_runner_resumes_without_issuing_or_signing_twice(h, app, node,
                                                                                              monkeypatch):
    """Batches signed in parallel: the runner dies while two are at the seal node; the next run
    sends both again (the seal node replays them) and each licence is issued and signed once."""
    from datetime import timedelta

    from common.db import utcnow
    from licenses.models import LicenceEvent

    job_id = upload(h, residents_csv(45)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch
    calls = []

    def dies_after_the_first(*args, **kwargs):  # signed at the seal node, then the runner is killed
        signatures = original(*args, **kwargs)
        calls.append(kwargs["idempotency_key"])
        if len(calls) > 1:
            raise KeyboardInterrupt
        return signatures

    monkeypatch.setattr(seal, "sign_batch", dies_after_the_first)
    run_until_killed(app, node, job_id, batch=10, inflight=2)
    monkeypatch.setattr(seal, "sign_batch", original)
    session, job = open_job(app, job_id)
    assert job.issued <= 10 and len(calls) >= 2
    job.lease_until = utcnow() - timedelta(seconds=1)
    session.commit()
    jobs.run_job(session, node["deps"], job, batch=10, inflight=2)
    assert (job.status, job.issued) == ("done", 45)
    session.close()
    assert h.count(Licence) == 45 and h.count(LicenceEvent) == 45
    assert len(seal.signed) == 45  # the interrupted batches were replayed by the seal node, not signed again


def test_a_runner_that_lapsed_does_not_take_the_job_back_once_the_next_one_released_it(h, app, node, monkeypatch):
    """Runner A is paused inside the seal call of its first chunk (its second reserved behind
    it) past its lease; B takes the job over, issues one chunk, stops (time is up) and releases.
    A must not take the released job back: it writes nothing and stops, and B's frame is kept."""
    import threading
    from datetime import timedelta

    from common.db import utcnow
    from licenses.models import LicenceEvent

    job_id = upload(h, residents_csv(25)).get_json()["id"]
    seal = node["deps"].seal
    original, commit = seal.sign_batch, jobs._Lease.commit
    reserved, both = [], threading.Event()

    def counts_reservations(self):
        commit(self)
        reserved.append(self.runner)
        if len(reserved) == 2:
            both.set()

    first: list = []

    def paused_while_another_runs(*args, **kwargs):
        signatures = original(*args, **kwargs)
        if first:
            return signatures
        first.append(kwargs["idempotency_key"])
        assert both.wait(10)  # A has reserved (and committed) its second chunk, and waits on this one
        other, other_job = open_job(app, job_id)
        assert len(other_job.chunks) == 2
        other_job.lease_until = utcnow() - timedelta(seconds=1)
        other.commit()
        jobs.run_job(other, node["deps"], other_job, batch=5, max_seconds=0.0001)  # one chunk, then releases
        assert (other_job.issued, other_job.runner, len(other_job.chunks)) == (5, None, 1)
        other.close()
        return signatures

    monkeypatch.setattr(jobs._Lease, "commit", counts_reservations)
    monkeypatch.setattr(seal, "sign_batch", paused_while_another_runs)
    session, job = open_job(app, job_id)
    ran = jobs.run_job(session, node["deps"], job, batch=5, inflight=1)
    assert (ran.status, ran.issued, ran.runner, len(ran.chunks)) == ("running", 5, None, 1)  # as B left it
    session.close()
    assert h.count(Licence) == 5 and h.count(LicenceEvent) == 5
    monkeypatch.setattr(seal, "sign_batch", original)
    resumed = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (resumed["status"], resumed["issued"], resumed["pending"]) == ("done", 25, 0)
    assert h.count(Licence) == 25 and len(seal.signed) == 25


def test_a_job_left_with_pending_licences_by_an_earlier_version_is_finished_without_signing_again(h, app, node):
    """Before chunks, a runner inserted a batch's licences pending (rows pointing at them, keyed
    by the batch) before signing them: such a batch is sent again under its key (the seal node
    replays it) and its licences are made valid."""
    from sqlalchemy import select

    from common.db import get_db
    from licenses import issuing
    from licenses.bulk import checked_rows
    from licenses.issuers import Issuer
    from licenses.models import BulkRow, LicenceEvent, LicenceType

    job_id = upload(h, residents_csv(5)).get_json()["id"]
    seal, deps = node["deps"].seal, node["deps"]
    with get_db(app).session() as session:  # what the earlier runner's step (1) and (2) did for 3 rows
        job = session.get(BulkJob, job_id)
        licence_type = session.get(LicenceType, job.type_code)
        issuer = Issuer(job.issuer_code, job.issuer_name, job.created_by, job.client_id)
        definition = checked_rows.definition_of(licence_type)
        rows = list(session.scalars(select(BulkRow).where(BulkRow.job_id == job_id).order_by(BulkRow.line)))[:3]
        numbers = issuing.take_numbers(session, licence_type, issuer.code, 3)
        made = []
        for row, taken in zip(rows, numbers, strict=True):
            passed = checked_rows.trusted_passed(deps, row, definition)
            checked = checked_rows.complete(licence_type, passed, issuing.today())
            values = issuing.pending_values(deps, issuer, checked, taken, idempotency_key=f"bulk:{job_id}:{row.line}")
            session.add(Licence(**values))
            row.licence_id, row.batch = values["id"], "a" * 32
            made.append(values)
        session.commit()
        seal.sign_batch(seal.seal_for(job.issuer_code, licence_type.seal_kind),
                        [(v["document_sm3"], v["identifier"]) for v in made],
                        idempotency_key=f"bulk:{job_id}:{'a' * 32}")
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["pending"]) == ("done", 5, 0)
    assert h.count(Licence) == 5 and h.count(LicenceEvent) == 5 and len(seal.signed) == 5
    with get_db(app).session() as session:
        assert {lic.status for lic in session.scalars(select(Licence))} == {"valid"}


def test_a_job_whose_department_has_no_usable_seal_yet_stays_resumable(h, app, node):
    """The seal node refusing the department's seal (suspended) before anything is signed is
    not a lost chunk: the run answers the refusal, the job keeps its rows and no runner, and it
    finishes once the seal is usable again."""
    job_id = upload(h, residents_csv(6)).get_json()["id"]
    session, job = open_job(app, job_id)
    issuer = job.issuer_code
    session.close()
    seal = node["deps"].seal
    seal.refuse.add(issuer)
    refused = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police)
    assert refused.status_code == 409 and refused.get_json()["code"] == "no_seal_for_issuer"
    shown = h.client.get(f"/bulk-jobs/{job_id}", headers=h.police).get_json()
    assert shown["status"] != "failed" and shown["issued"] == 0 and "suspended" in shown["last_error"]
    assert h.count(Licence) == 0
    seal.refuse.discard(issuer)
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("done", 6)


def test_a_job_that_breaks_while_resumed_is_logged_with_its_frames_not_its_message(h, app, node, monkeypatch,
                                                                                     caplog):
    import logging
    from datetime import timedelta

    from common.db import utcnow

    job_id = upload(h, residents_csv(3)).get_json()["id"]
    session, job = open_job(app, job_id)
    job.status, job.lease_until = "running", utcnow() - timedelta(hours=1)
    session.commit()

    secret = "s3" + "cret"  # the frames quote the raising line's source, not the message's values

    def breaks(*args, **kwargs):
        raise RuntimeError(f"connection to postgresql://licenses:{secret}@db.internal failed")

    monkeypatch.setattr(jobs, "run_job", breaks)
    with caplog.at_level(logging.ERROR, logger=jobs.log.name):
        assert jobs.resume_abandoned(session, node["deps"], batch=10, lease_seconds=60) == 0
    session.close()
    [logged] = [r for r in caplog.records if "could not be resumed" in r.getMessage()]
    assert "RuntimeError" in logged.getMessage() and "in breaks" in logged.getMessage()
    assert "s3cret" not in logged.getMessage() and logged.exc_info is None
