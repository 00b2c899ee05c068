"""Bulk issuance: every row validated first (line + reason), sealed in batches, resumable."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from common.values.codes import CitizenId
from licenses import bulk
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
        bulk.run_job(session, node["deps"], job, batch=10, max_seconds=0.0001)  # stops after one batch
        assert job.issued == 10 and job.status == "running"
        seal.fail_next = 1
        with pytest.raises(SealUnavailable):
            bulk.run_job(session, node["deps"], job, batch=10)
        assert job.issued == 10 and job.last_error
    # the failed batch left pending (invisible) licences; resuming reuses them
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
