"""Bulk issuance, the upload: every row validated before anything is issued, each bad row
reported with its line and code, job-level errors storing nothing."""

from __future__ import annotations

import csv
import io
import json

from licenses.models import BulkJob, Licence
from tests.licenses.bulk.job_steps import HEADER, residents_csv, upload


def test_bad_rows_are_reported_and_the_rest_issued(h, node):
    bad = {3: {"holder_code": "610113198001010000"}, 7: {"sex": "未知"}, 11: {"birth_date": "1980-13-01"},
           12: {"holder_name": ""}}
    response = upload(h, residents_csv(30, bad))
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert (job["total"], job["invalid"], job["pending"], job["issued"]) == (30, 4, 26, 0)
    assert [e["line"] for e in job["errors"]] == [5, 9, 13, 14]  # CSV lines: header is line 1
    assert "invalid_citizen_id" in job["errors"][0]["reason"] and "sex" in job["errors"][1]["reason"]
    assert h.count(Licence) == 0  # validation issues nothing
    ran = h.client.post(f"/bulk-jobs/{job['id']}/run", headers=h.police).get_json()
    assert (ran["status"], ran["issued"], ran["pending"]) == ("done", 26, 0)
    assert h.count(Licence) == 26 and node["deps"].seal.batches == 1


def test_json_lines(h):
    good = {"holder_code": h.ZHANG, "holder_name": "张三", "fields": h.residence_fields()}
    text = "\n".join([json.dumps(good, ensure_ascii=False), "{not json", json.dumps([1])])
    job = upload(h, text, "jsonl").get_json()
    assert (job["total"], job["invalid"]) == (3, 2) and [e["line"] for e in job["errors"]] == [2, 3]


def test_job_level_errors_store_nothing(h):
    assert upload(h, ",".join(HEADER) + "\n").get_json()["code"] == "no_rows"
    assert upload(h, "").get_json()["code"] == "invalid_header"
    assert upload(h, "a,b\n1,2\n").get_json()["code"] == "invalid_header"
    forbidden = h.client.post("/bulk-jobs?type_code=residence_permit", data=residents_csv(2), headers=h.issuer,
                              content_type="text/csv")
    assert forbidden.status_code == 403
    assert h.count(BulkJob) == 0


def test_other_departments_do_not_see_a_job(h):
    job_id = upload(h, residents_csv(2)).get_json()["id"]
    assert h.client.get(f"/bulk-jobs/{job_id}", headers=h.issuer).status_code == 404
    assert h.client.get(f"/bulk-jobs/{job_id}", headers=h.police).status_code == 200


def test_each_kind_of_bad_row_is_reported_with_its_line_and_code(h):
    rows = list(csv.DictReader(io.StringIO(residents_csv(12, {
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
    job = upload(h, out.getvalue()).get_json()
    assert [(e["line"], e["code"]) for e in job["errors"]] == [
        (3, "invalid_citizen_id"), (4, "invalid_fields"), (5, "invalid_fields"), (6, "invalid_fields"),
        (7, "invalid_holder"), (9, "duplicate_row"), (10, "unknown_licence_type"), (11, "type_mismatch")]
    assert "line 8" in job["errors"][5]["reason"]
    assert (job["invalid"], job["pending"]) == (8, 4)


def test_a_nul_character_in_the_query_is_a_problem_not_a_database_error(h):
    """PostgreSQL refuses text with U+0000: each of these was a 500 there (API fuzz sweep)."""
    unknown = h.client.post("/bulk-jobs?type_code=residence%00permit", data=residents_csv(2), headers=h.police,
                            content_type="text/csv")
    assert (unknown.status_code, unknown.get_json()["code"]) == (422, "validation_failed")  # refused before the view
    listed = h.client.get("/licences?status=%19%00P", headers=h.police)
    assert listed.status_code == 422
    assert listed.get_json()["errors"] == {"status": ["must not contain the NUL character"]}
    assert h.count(BulkJob) == 0
