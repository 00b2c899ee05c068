"""Bulk chunks: each licence written once, sealed and valid, with its event and its known holder
told; a chunk killed after the seal node signed it is rebuilt into the same documents, or fails its
job; the schema keeps chunks from an older runner; COPY on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest

from licenses.bulk import jobs
from licenses.models import BulkJob, Licence
from tests.licenses.bulk.job_steps import open_job, residents_csv, run_until_killed, upload


def test_each_bulk_licence_is_sealed_recorded_and_its_known_holder_told(h, app, node):
    """Step (3) writes a batch with a few statements: each licence gets its own signature and
    one ``bulk_issue`` event, and a holder the node knows is told of their licence (and only of
    theirs) through the outbox."""
    from sqlalchemy import select

    from common.db import get_db
    from licenses import issuing
    from licenses.models import LicenceEvent, Notification

    text = residents_csv(12)
    known_code = next(csv.DictReader(io.StringIO(text)))["holder_code"]
    with get_db(app).session() as session:
        issuing.link_holder(session, node["deps"].cipher, "p-known", [("person", known_code)])
    job_id = upload(h, text).get_json()["id"]
    with get_db(app).session() as session:
        jobs.run_job(session, node["deps"], session.get(BulkJob, job_id), batch=5, inflight=2)
    with get_db(app).session() as session:
        licences = list(session.scalars(select(Licence)))
        assert len(licences) == 12 and {lic.status for lic in licences} == {"valid"}
        assert all(lic.signature_b64 and lic.signed_at and lic.issued_at and lic.seal_id for lic in licences)
        assert len({lic.signature_id for lic in licences}) == 12  # each its own signature
        events = list(session.scalars(select(LicenceEvent)))
        assert sorted(e.licence_id for e in events) == sorted(lic.id for lic in licences)
        assert {(e.action, e.from_status, e.to_status) for e in events} == {("bulk_issue", "pending", "valid")}
        notes = list(session.scalars(select(Notification)))
        told = [lic for lic in licences if lic.holder_index == issuing.holder_index(node["deps"].cipher, "person",
                                                                                     known_code)]
        assert len(notes) == len(told) >= 1
        assert notes[0].recipients == [{"subject": "p-known"}] and notes[0].template == "licence_issued"
        assert notes[0].variables["face_number"] in {lic.face_number for lic in told}


def test_no_licence_exists_unsealed_while_its_chunk_is_at_the_seal_node(h, app, node, monkeypatch):
    """Each licence is written once, sealed and valid: while a chunk is being signed, none of its
    licences exists, and no licence of the job ever exists pending."""
    from sqlalchemy import func, select

    from common.db import get_db
    from licenses.models import LicenceEvent

    job_id = upload(h, residents_csv(30)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch
    seen = []

    def looks_at_the_database(*args, **kwargs):
        with get_db(app).session() as other:
            seen.append((other.scalar(select(func.count()).select_from(Licence)),
                         other.scalar(select(func.count()).select_from(Licence).where(Licence.status != "valid"))))
        return original(*args, **kwargs)

    monkeypatch.setattr(seal, "sign_batch", looks_at_the_database)
    session, job = open_job(app, job_id)
    jobs.run_job(session, node["deps"], job, batch=10, inflight=1)
    session.close()
    assert seen[0] == (0, 0) and all(pending == 0 for _, pending in seen) and len(seen) == 3
    assert h.count(Licence) == 30 and h.count(LicenceEvent) == 30


def test_a_chunk_killed_after_signing_is_rebuilt_exactly_even_if_the_type_changed_meanwhile(h, app, node,
                                                                                             monkeypatch):
    """The runner dies once the seal node has signed a chunk; before the next run the type is
    renamed and its term changed. The chunk is rebuilt from its frame into the same documents
    (same digests under the same key, so the seal node replays them) and its licences carry the
    signatures first made; chunks reserved after it follow the type as it is now."""
    from datetime import timedelta

    from sqlalchemy import select

    from common.db import get_db, utcnow
    from licenses import issuing
    from licenses.models import LicenceType

    job_id = upload(h, residents_csv(25)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch
    sent: dict[str, list] = {}

    def dies_after_the_first(seal_id, items, *, idempotency_key):
        signatures = original(seal_id, items, idempotency_key=idempotency_key)
        first = idempotency_key not in sent
        sent.setdefault(idempotency_key, []).append((items, signatures))
        if first and len(sent) == 1:
            raise KeyboardInterrupt
        return signatures

    monkeypatch.setattr(seal, "sign_batch", dies_after_the_first)
    run_until_killed(app, node, job_id, batch=10, inflight=1)
    session, job = open_job(app, job_id)
    assert job.issued == 0 and len(job.chunks) == 2 and h.count(Licence) == 0  # two chunks were at the seal node
    before = {identifier for calls in sent.values() for _, identifier in calls[0][0]}
    licence_type = session.get(LicenceType, job.type_code)
    old_name, licence_type.name, licence_type.validity_days = licence_type.name, "居住证（新）", 30
    job.lease_until = utcnow() - timedelta(seconds=1)
    session.commit()
    first_day = issuing.today()
    monkeypatch.setattr(issuing, "today", lambda: first_day + timedelta(days=1))  # resumed the next day
    jobs.run_job(session, node["deps"], job, batch=10, inflight=1)
    assert (job.status, job.issued, job.chunks) == ("done", 25, [])
    session.close()
    killed = next(iter(sent))
    (first_items, first_signatures), (replayed_items, _) = sent[killed]
    assert replayed_items == first_items
    assert len(seal.signed) == 25
    with get_db(app).session() as session:
        licences = {lic.identifier: lic for lic in session.scalars(select(Licence))}
    documents = {i: json.loads(issuing.document_of(node["deps"], lic)) for i, lic in licences.items()}
    chunk = {identifier for _, identifier in first_items}
    assert {licences[i].signature_id for i in chunk} == {s.signature_id for s in first_signatures}
    assert {documents[i]["type_name"] for i in chunk} == {old_name}
    assert {documents[i]["issue_date"] for i in before} == {first_day.isoformat()}  # the frame's day
    assert {licences[i].valid_from for i in before} == {first_day}
    later = [d for d in documents.values() if d["identifier"] not in before]
    assert len(later) == 5 and {d["type_name"] for d in later} == {"居住证（新）"}
    assert {d["issue_date"] for d in later} == {(first_day + timedelta(days=1)).isoformat()}
    assert all(licences[i].document_sm3 == digest for digest, i in first_items)


def _killed_after_signing(app, node, monkeypatch, job_id, batch=5):
    """Run the job until the seal node has signed its first chunk, then kill the runner; its
    lease lapsed, as if long ago."""
    from datetime import timedelta

    from common.db import utcnow

    seal = node["deps"].seal
    original = seal.sign_batch

    def dies_once_signed(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(seal, "sign_batch", dies_once_signed)
    run_until_killed(app, node, job_id, batch=batch, inflight=1)
    monkeypatch.setattr(seal, "sign_batch", original)
    session, job = open_job(app, job_id)
    job.lease_until = utcnow() - timedelta(hours=1)
    session.commit()
    return session, job


def test_a_chunk_that_cannot_be_rebuilt_fails_its_job_and_the_sweep_goes_on(h, app, node, monkeypatch):
    """A reserved chunk whose rows lost their checked values cannot give back the documents the
    seal node signed: its job fails (saying why, lease released) and the sweep of abandoned jobs
    still resumes the others."""
    from licenses.models import BulkRow

    lost = upload(h, residents_csv(8)).get_json()["id"]
    fine = upload(h, residents_csv(8)).get_json()["id"]
    for job_id in (lost, fine):
        session, job = _killed_after_signing(app, node, monkeypatch, job_id)
        assert job.chunks and job.issued == 0
        if job_id == lost:
            row = session.get(BulkRow, (job_id, job.chunks[0]["lines"][0]))
            row.payload = {"enc": row.payload["enc"]}
            session.commit()
        session.close()
    session, job = open_job(app, lost)
    assert jobs.resume_abandoned(session, node["deps"], batch=5, lease_seconds=60, idle_seconds=0) == 1
    session.close()
    session, job = open_job(app, lost)
    assert (job.status, job.runner, job.issued) == ("failed", None, 0) and "ChunkLost" in job.last_error
    session.close()
    assert h.client.get(f"/bulk-jobs/{fine}", headers=h.police).get_json()["status"] == "done"
    assert h.count(Licence) == 8


def test_a_replay_the_seal_node_refuses_fails_the_job(h, app, node, monkeypatch):
    """A chunk rebuilt into other documents than those signed (here its frame's day altered) is
    refused by the seal node (same key, other items): the job fails, saying why, and nothing of
    the chunk is issued."""
    job_id = upload(h, residents_csv(8)).get_json()["id"]
    session, job = _killed_after_signing(app, node, monkeypatch, job_id)
    job.chunks = [{**job.chunks[0], "day": "2020-01-01"}, *job.chunks[1:]]
    session.commit()
    session.close()
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("failed", 0) and "idempotency_mismatch" in ran["last_error"]
    assert h.count(Licence) == 0
    again = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police)
    assert again.status_code == 200 and again.get_json()["status"] == "failed"  # not retried


def test_downgrading_below_chunks_is_refused_while_a_job_has_chunks_being_sealed(tmp_path):
    """The older runner would reserve a frame's lines again: the downgrade waits for the job."""
    from sqlalchemy import create_engine, inspect, text

    from common.ops.migrate import downgrade, upgrade

    url = f"sqlite:///{tmp_path / 'licenses'}.db"
    upgrade("licenses", url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO bulk_jobs (id, type_code, issuer_code, issuer_name, created_by, status, total,"
                          " invalid, issued, created_at, chunks) VALUES ('j1', 't', 'o', 'n', 'a', 'running', 1, 0, 0,"
                          " '2026-12-07 00:00:00', :chunks)"), {"chunks": json.dumps([{"lines": [2]}])})
    with pytest.raises(RuntimeError, match="j1"):
        downgrade("licenses", url, "licenses_0003")
    with engine.begin() as conn:  # a failed job is never run again: its frames do not hold the downgrade
        # (the downgrade copies bulk_jobs, so the job's type must exist: a stand-in with its required columns)
        conn.execute(text("UPDATE bulk_jobs SET status = 'failed'"))
        required = [c for c in inspect(conn).get_columns("licence_types") if not c["nullable"]]
        conn.execute(text(f"INSERT INTO licence_types ({', '.join(c['name'] for c in required)}) VALUES "
                          f"({', '.join(':' + c['name'] for c in required)})"),
                     {c["name"]: "t" if c["name"] == "code" else 0 if "INT" in str(c["type"]) else "[]"
                      for c in required})
    downgrade("licenses", url, "licenses_0003")
    assert "chunks" not in {c["name"] for c in inspect(engine).get_columns("bulk_jobs")}
    engine.dispose()


def test_copy_keeps_tabs_backslashes_and_newlines_in_a_holder_name(h, app, postgres_url):
    """On PostgreSQL a chunk's licences go in by COPY (text format, where a tab, a backslash and
    a newline are syntax): a holder name holding them is stored as it was given."""
    from sqlalchemy import select

    from common.db import get_db
    from licenses.bulk import chunks
    from licenses.models import LicenceEvent

    name = "居民\t甲\\乙\n丙"
    job = upload(h, residents_csv(2, {0: {"holder_name": name}})).get_json()
    assert job["invalid"] == 0, job["errors"]
    ran = h.client.post(f"/bulk-jobs/{job['id']}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("done", 2)
    with get_db(app).session() as session:
        assert name in set(session.scalars(select(Licence.holder_name)))
        with pytest.raises(ValueError, match="naive"):  # COPY would take it in the session's time zone
            chunks._insert(session, LicenceEvent.__table__, [{"at": datetime(2026, 12, 7, 8, 0)}])
