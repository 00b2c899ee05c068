"""Bulk issuance: every row validated first (line + reason), sealed in batches, resumable."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime

import pytest

from common.values.codes import CitizenId
from licenses.bulk import jobs
from licenses.models import BulkJob, Licence

HEADER = ["holder_code", "holder_name", "name", "sex", "birth_date", "id_number", "address"]


def _csv(n: int, bad: dict[int, dict] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for i in range(n):
        number = CitizenId.build("610113", date(1980, 1, 1 + i % 28), i % 1000).value
        row = {"holder_code": number, "holder_name": f"居民{i}", "name": f"居民{i}", "sex": "男",
               "birth_date": "1980-01-01", "id_number": number, "address": f"西安市雁塔区{i}号"}
        row.update((bad or {}).get(i, {}))
        writer.writerow([row[k] for k in HEADER])
    return out.getvalue()


def _upload(h, text, fmt="csv"):
    return h.client.post(f"/bulk-jobs?type_code=residence_permit&format={fmt}", data=text.encode(), headers=h.police,
                         content_type="text/csv" if fmt == "csv" else "application/jsonl")


def test_bad_rows_are_reported_and_the_rest_issued(h, node):
    bad = {3: {"holder_code": "610113198001010000"}, 7: {"sex": "未知"}, 11: {"birth_date": "1980-13-01"},
           12: {"holder_name": ""}}
    response = _upload(h, _csv(30, bad))
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert (job["total"], job["invalid"], job["pending"], job["issued"]) == (30, 4, 26, 0)
    assert [e["line"] for e in job["errors"]] == [5, 9, 13, 14]  # CSV lines: header is line 1
    assert "invalid_citizen_id" in job["errors"][0]["reason"] and "sex" in job["errors"][1]["reason"]
    assert h.count(Licence) == 0  # validation issues nothing
    ran = h.client.post(f"/bulk-jobs/{job['id']}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["pending"]) == ("done", 26, 0)
    assert h.count(Licence) == 26 and node["deps"].seal.batches == 1


def test_a_crash_mid_job_resumes_without_issuing_twice(h, app, node):
    from common.db import get_db
    from common.peers.seal_client import SealUnavailable

    job_id = _upload(h, _csv(25)).get_json()["id"]
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


def test_json_lines(h):
    good = {"holder_code": h.ZHANG, "holder_name": "张三", "fields": h.residence_fields()}
    text = "\n".join([json.dumps(good, ensure_ascii=False), "{not json", json.dumps([1])])
    job = _upload(h, text, "jsonl").get_json()
    assert (job["total"], job["invalid"]) == (3, 2) and [e["line"] for e in job["errors"]] == [2, 3]


def test_job_level_errors_store_nothing(h):
    assert _upload(h, ",".join(HEADER) + "\n").get_json()["code"] == "no_rows"
    assert _upload(h, "").get_json()["code"] == "invalid_header"
    assert _upload(h, "a,b\n1,2\n").get_json()["code"] == "invalid_header"
    forbidden = h.client.post("/bulk-jobs?type_code=residence_permit", data=_csv(2), headers=h.issuer,
                              content_type="text/csv")
    assert forbidden.status_code == 403
    assert h.count(BulkJob) == 0


def test_other_departments_do_not_see_a_job(h):
    job_id = _upload(h, _csv(2)).get_json()["id"]
    assert h.client.get(f"/bulk-jobs/{job_id}", headers=h.issuer).status_code == 404
    assert h.client.get(f"/bulk-jobs/{job_id}", headers=h.police).status_code == 200


def test_each_kind_of_bad_row_is_reported_with_its_line_and_code(h):
    rows = list(csv.DictReader(io.StringIO(_csv(12, {
        1: {"holder_code": "610113198001010000"},  # ID number check digit
        2: {"address": ""},  # a required field missing
        3: {"birth_date": "1980-02-30"},  # not a date
        4: {"sex": "X"},  # not one of the choices
        5: {"holder_name": ""}}))))
    for row in rows:
        row["type_code"] = "residence_permit"
    rows[7] = dict(rows[6])  # a duplicate of the row before
    rows[8]["type_code"], rows[9]["type_code"] = "no_such_type", "food_business_license"
    out = io.StringIO()
    writer = csv.DictWriter(out, ["type_code", *HEADER])
    writer.writeheader()
    writer.writerows(rows)
    job = _upload(h, out.getvalue()).get_json()
    assert [(e["line"], e["code"]) for e in job["errors"]] == [
        (3, "invalid_citizen_id"), (4, "invalid_fields"), (5, "invalid_fields"), (6, "invalid_fields"),
        (7, "invalid_holder"), (9, "duplicate_row"), (10, "unknown_licence_type"), (11, "type_mismatch")]
    assert "line 8" in job["errors"][5]["reason"]
    assert (job["invalid"], job["pending"]) == (8, 4)


def _job(app, job_id):
    from common.db import get_db

    session = get_db(app).sessionmaker()
    return session, session.get(BulkJob, job_id)


def test_a_killed_runner_holds_the_job_until_its_lease_lapses_then_it_resumes(h, app, node, monkeypatch):
    from datetime import timedelta

    from common.db import utcnow

    job_id = _upload(h, _csv(25)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch
    calls = []

    def dies_after_signing(*args, **kwargs):  # the process is killed once the seal node has signed
        calls.append(original(*args, **kwargs))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return calls[-1]

    monkeypatch.setattr(seal, "sign_batch", dies_after_signing)
    session, job = _job(app, job_id)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(session, node["deps"], job, batch=10)
    session.close()
    monkeypatch.setattr(seal, "sign_batch", original)
    busy = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police)
    assert busy.status_code == 409 and busy.get_json()["code"] == "bulk_job_running"
    session, job = _job(app, job_id)
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

    job_id = _upload(h, _csv(5)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch

    def paused_while_another_runs(*args, **kwargs):
        signatures = original(*args, **kwargs)
        monkeypatch.setattr(seal, "sign_batch", original)
        other, other_job = _job(app, job_id)
        other_job.lease_until = utcnow() - timedelta(seconds=1)
        other.commit()
        jobs.run_job(other, node["deps"], other_job, batch=10)  # takes the lapsed lease, finishes
        other.close()
        return signatures

    monkeypatch.setattr(seal, "sign_batch", paused_while_another_runs)
    session, job = _job(app, job_id)
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

    job_id = _upload(h, _csv(45)).get_json()["id"]
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
    session, job = _job(app, job_id)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(session, node["deps"], job, batch=10, inflight=2)
    session.close()
    monkeypatch.setattr(seal, "sign_batch", original)
    session, job = _job(app, job_id)
    assert job.issued <= 10 and len(calls) >= 2
    job.lease_until = utcnow() - timedelta(seconds=1)
    session.commit()
    jobs.run_job(session, node["deps"], job, batch=10, inflight=2)
    assert (job.status, job.issued) == ("done", 45)
    session.close()
    assert h.count(Licence) == 45 and h.count(LicenceEvent) == 45
    assert len(seal.signed) == 45  # the interrupted batches were replayed by the seal node, not signed again


def test_each_bulk_licence_is_sealed_recorded_and_its_known_holder_told(h, app, node):
    """Step (3) writes a batch with a few statements: each licence gets its own signature and
    one ``bulk_issue`` event, and a holder the node knows is told of their licence (and only of
    theirs) through the outbox."""
    from sqlalchemy import select

    from common.db import get_db
    from licenses import issuing
    from licenses.models import LicenceEvent, Notification

    text = _csv(12)
    known_code = next(csv.DictReader(io.StringIO(text)))["holder_code"]
    with get_db(app).session() as session:
        issuing.link_holder(session, node["deps"].cipher, "p-known", [("person", known_code)])
    job_id = _upload(h, text).get_json()["id"]
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


def test_rows_are_issued_from_their_values_checked_at_upload_starting_on_the_day_of_issue(h, app, node, monkeypatch):
    """The runner does not check a row again (its values were checked and sealed at the upload),
    and a row naming no start date starts on the day it is issued, not on the day of the upload."""
    from datetime import timedelta

    from sqlalchemy import select

    from common.db import get_db
    from licenses import issuing

    job_id = _upload(h, _csv(4)).get_json()["id"]
    later = date(2031, 3, 1)
    monkeypatch.setattr(issuing, "today", lambda: later)

    def no_second_check(*args, **kwargs):
        raise AssertionError("a row checked at upload was checked again")

    monkeypatch.setattr(issuing, "check_request", no_second_check)
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("done", 4)
    with get_db(app).session() as session:
        licences = list(session.scalars(select(Licence)))
    assert {(lic.valid_from, lic.valid_until) for lic in licences} == {(later, later + timedelta(days=364))}
    documents = [json.loads(issuing.document_of(node["deps"], lic)) for lic in licences]
    assert {d["issue_date"] for d in documents} == {later.isoformat()}
    assert sorted(d["fields"]["address"] for d in documents) == [f"西安市雁塔区{i}号" for i in range(4)]


def test_rows_are_checked_again_when_the_type_changed_since_the_upload_or_have_no_checked_values(h, app, node):
    from common.db import get_db
    from licenses.models import BulkRow, LicenceType

    changed = _upload(h, _csv(3)).get_json()["id"]
    older = _upload(h, _csv(2)).get_json()["id"]
    with get_db(app).session() as session:
        for row in session.query(BulkRow).filter_by(job_id=older):
            row.payload = {"enc": row.payload["enc"]}  # as an upload before checked values were kept
        licence_type = session.get(LicenceType, session.get(BulkJob, changed).type_code)
        licence_type.fields = [*licence_type.fields, {"name": "permit_class", "label": "类别", "required": True}]
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{changed}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 0, 3)
    assert {e["code"] for e in ran["errors"]} == {"invalid_fields"} and "permit_class" in ran["errors"][0]["reason"]
    with get_db(app).session() as session:  # the type as it was: the older rows pass their full check
        licence_type = session.get(LicenceType, session.get(BulkJob, older).type_code)
        licence_type.fields = [f for f in licence_type.fields if f["name"] != "permit_class"]
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{older}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 2, 0)


@pytest.mark.parametrize("source", ["another_job", "another_line"])
def test_checked_values_copied_from_another_row_are_not_trusted(h, app, node, source):
    """A row's checked values are bound to its job and line: a blob copied into another row (of
    another job, or another line of the same job) does not decrypt there, and the row is checked
    in full from its own payload, which here does not pass, so nothing unchecked is issued."""
    from common.db import get_db
    from licenses.models import BulkRow

    cipher = node["deps"].cipher
    donor = _upload(h, _csv(2)).get_json()["id"]
    target, line = (donor, 3) if source == "another_line" else (_upload(h, _csv(2)).get_json()["id"], 2)
    with get_db(app).session() as session:
        row = session.get(BulkRow, (target, line))
        item = json.loads(cipher.decrypt("bulk_row", row.payload["enc"]))
        item["holder_code"] = "610113198001010000"  # a wrong check digit: this row's own request fails
        row.payload = {"enc": cipher.encrypt("bulk_row", json.dumps(item, ensure_ascii=False)),
                       "checked": session.get(BulkRow, (donor, 2)).payload["checked"]}
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{target}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 1, 1)
    assert [(e["line"], e["code"]) for e in ran["errors"]] == [(line, "invalid_citizen_id")]
    assert h.count(Licence) == 1


def test_a_rows_checked_values_depend_on_the_type_code():
    """Two types alike but for their code have different definitions: values checked for one
    are not taken for the other (:func:`licenses.bulk.checked_rows.definition_of`)."""
    from types import SimpleNamespace

    from licenses.bulk.checked_rows import definition_of

    fields = [{"name": "address", "label": "住址", "required": True}]
    one = SimpleNamespace(code="residence_permit", holder_kind="person", fields=fields)
    other = SimpleNamespace(code="residence_permit_copy", holder_kind="person", fields=fields)
    assert definition_of(one) != definition_of(other)
    assert definition_of(one) == definition_of(SimpleNamespace(**vars(one)))


def test_no_licence_exists_unsealed_while_its_chunk_is_at_the_seal_node(h, app, node, monkeypatch):
    """Each licence is written once, sealed and valid: while a chunk is being signed, none of its
    licences exists, and no licence of the job ever exists pending."""
    from sqlalchemy import func, select

    from common.db import get_db
    from licenses.models import LicenceEvent

    job_id = _upload(h, _csv(30)).get_json()["id"]
    seal = node["deps"].seal
    original = seal.sign_batch
    seen = []

    def looks_at_the_database(*args, **kwargs):
        with get_db(app).session() as other:
            seen.append((other.scalar(select(func.count()).select_from(Licence)),
                         other.scalar(select(func.count()).select_from(Licence).where(Licence.status != "valid"))))
        return original(*args, **kwargs)

    monkeypatch.setattr(seal, "sign_batch", looks_at_the_database)
    session, job = _job(app, job_id)
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

    job_id = _upload(h, _csv(25)).get_json()["id"]
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
    session, job = _job(app, job_id)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(session, node["deps"], job, batch=10, inflight=1)
    session.close()
    session, job = _job(app, job_id)
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


def test_rows_of_a_retired_type_are_refused_each_with_its_line(h, app):
    from common.db import get_db
    from licenses.models import LicenceType

    job_id = _upload(h, _csv(3)).get_json()["id"]
    with get_db(app).session() as session:
        session.get(LicenceType, session.get(BulkJob, job_id).type_code).status = "retired"
        session.commit()
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["invalid"]) == ("done", 0, 3)
    assert [(e["line"], e["code"]) for e in ran["errors"]] == [(2, "licence_type_retired"), (3, "licence_type_retired"),
                                                              (4, "licence_type_retired")]


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

    job_id = _upload(h, _csv(5)).get_json()["id"]
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


def test_a_runner_that_lapsed_does_not_take_the_job_back_once_the_next_one_released_it(h, app, node, monkeypatch):
    """Runner A is paused inside the seal call of its first chunk (its second reserved behind
    it) past its lease; B takes the job over, issues one chunk, stops (time is up) and releases.
    A must not take the released job back: it writes nothing and stops, and B's frame is kept."""
    import threading
    from datetime import timedelta

    from common.db import utcnow
    from licenses.models import LicenceEvent

    job_id = _upload(h, _csv(25)).get_json()["id"]
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
        other, other_job = _job(app, job_id)
        assert len(other_job.chunks) == 2
        other_job.lease_until = utcnow() - timedelta(seconds=1)
        other.commit()
        jobs.run_job(other, node["deps"], other_job, batch=5, max_seconds=0.0001)  # one chunk, then releases
        assert (other_job.issued, other_job.runner, len(other_job.chunks)) == (5, None, 1)
        other.close()
        return signatures

    monkeypatch.setattr(jobs._Lease, "commit", counts_reservations)
    monkeypatch.setattr(seal, "sign_batch", paused_while_another_runs)
    session, job = _job(app, job_id)
    ran = jobs.run_job(session, node["deps"], job, batch=5, inflight=1)
    assert (ran.status, ran.issued, ran.runner, len(ran.chunks)) == ("running", 5, None, 1)  # as B left it
    session.close()
    assert h.count(Licence) == 5 and h.count(LicenceEvent) == 5
    monkeypatch.setattr(seal, "sign_batch", original)
    resumed = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (resumed["status"], resumed["issued"], resumed["pending"]) == ("done", 25, 0)
    assert h.count(Licence) == 25 and len(seal.signed) == 25

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
    session, job = _job(app, job_id)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(session, node["deps"], job, batch=batch, inflight=1)
    session.close()
    monkeypatch.setattr(seal, "sign_batch", original)
    session, job = _job(app, job_id)
    job.lease_until = utcnow() - timedelta(hours=1)
    session.commit()
    return session, job


def test_a_chunk_that_cannot_be_rebuilt_fails_its_job_and_the_sweep_goes_on(h, app, node, monkeypatch):
    """A reserved chunk whose rows lost their checked values cannot give back the documents the
    seal node signed: its job fails (saying why, lease released) and the sweep of abandoned jobs
    still resumes the others."""
    from licenses.models import BulkRow

    lost = _upload(h, _csv(8)).get_json()["id"]
    fine = _upload(h, _csv(8)).get_json()["id"]
    for job_id in (lost, fine):
        session, job = _killed_after_signing(app, node, monkeypatch, job_id)
        assert job.chunks and job.issued == 0
        if job_id == lost:
            row = session.get(BulkRow, (job_id, job.chunks[0]["lines"][0]))
            row.payload = {"enc": row.payload["enc"]}
            session.commit()
        session.close()
    session, job = _job(app, lost)
    assert jobs.resume_abandoned(session, node["deps"], batch=5, lease_seconds=60, idle_seconds=0) == 1
    session.close()
    session, job = _job(app, lost)
    assert (job.status, job.runner, job.issued) == ("failed", None, 0) and "ChunkLost" in job.last_error
    session.close()
    assert h.client.get(f"/bulk-jobs/{fine}", headers=h.police).get_json()["status"] == "done"
    assert h.count(Licence) == 8

def test_a_replay_the_seal_node_refuses_fails_the_job(h, app, node, monkeypatch):
    """A chunk rebuilt into other documents than those signed (here its frame's day altered) is
    refused by the seal node (same key, other items): the job fails, saying why, and nothing of
    the chunk is issued."""
    job_id = _upload(h, _csv(8)).get_json()["id"]
    session, job = _killed_after_signing(app, node, monkeypatch, job_id)
    job.chunks = [{**job.chunks[0], "day": "2020-01-01"}, *job.chunks[1:]]
    session.commit()
    session.close()
    ran = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("failed", 0) and "idempotency_mismatch" in ran["last_error"]
    assert h.count(Licence) == 0
    again = h.client.post(f"/bulk-jobs/{job_id}/run", headers=h.police)
    assert again.status_code == 200 and again.get_json()["status"] == "failed"  # not retried



def test_a_job_whose_department_has_no_usable_seal_yet_stays_resumable(h, app, node):
    """The seal node refusing the department's seal (suspended) before anything is signed is
    not a lost chunk: the run answers the refusal, the job keeps its rows and no runner, and it
    finishes once the seal is usable again."""
    job_id = _upload(h, _csv(6)).get_json()["id"]
    session, job = _job(app, job_id)
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
    job = _upload(h, _csv(2, {0: {"holder_name": name}})).get_json()
    assert job["invalid"] == 0, job["errors"]
    ran = h.client.post(f"/bulk-jobs/{job['id']}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"]) == ("done", 2)
    with get_db(app).session() as session:
        assert name in set(session.scalars(select(Licence.holder_name)))
        with pytest.raises(ValueError, match="naive"):  # COPY would take it in the session's time zone
            chunks._insert(session, LicenceEvent.__table__, [{"at": datetime(2026, 12, 7, 8, 0)}])
