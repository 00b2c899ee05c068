"""A bulk job of 5,000 rows, ten of them bad, on the real processes through the gateway (issue 11).

The approval bureau's system (client credentials, ``licenses:issue``) uploads 5,000 rows of a
person licence type the admin adds for the test (holders are citizens, so an ID number's check
digit can be wrong). The ten bad rows are each of a different kind. A runner started as its own
process (``xsn licenses run-bulk-job``) is killed with SIGKILL part-way; once its lease lapses
the job is carried on through the gateway (``POST /bulk-jobs/<id>/run``) to the end. Then: the
job reports exactly the ten bad rows with their lines and codes, 4,990 licences are valid, each
sealed once by the seal node's batch signing (no licence made or signed twice across the
kill), and a sample verifies at the seal node.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import signal
import sys
import time
from datetime import date

import pytest
import requests
from sqlalchemy import text

from common.values.codes import CitizenId
from licenses.config import APPROVAL_BUREAU
from licenses.seed import MPS
from tests.support.suite import client_token, process, service_database, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ISSUER = "xsn-licenses-demo-issuer"
ROWS = 5000
TYPE = {"code": MPS + "901", "slug": "bulk_test_permit", "name": "批量测试证", "holder_kind": "person",
        "issuers": [APPROVAL_BUREAU[1]], "validity_days": 365, "seal_kind": "license", "face_prefix": "PL",
        "fields": [{"name": "name", "label": "姓名", "personal": True, "max_length": 64},
                   {"name": "id_number", "label": "公民身份号码", "type": "citizen_id", "personal": True},
                   {"name": "address", "label": "住址", "personal": True}]}
HEADER = ["type_code", "holder_code", "holder_name", "name", "id_number", "address", "valid_from", "valid_until"]


def _citizen(i: int) -> str:
    return CitizenId.build("610113", date(1960 + i % 40, 1 + i % 12, 1 + i % 28), i // 480).value


def _upload_text() -> tuple[str, dict[int, str]]:
    """The CSV and the ten bad rows: CSV line -> the code the job must report."""
    rows: list[list[str]] = []
    for i in range(ROWS):
        number = _citizen(i)
        rows.append(["", number, f"居民{i}", f"居民{i}", number, f"西安市碑林区{i}号", "", ""])
    bad_id = _citizen(100)
    rows[100][1] = bad_id[:17] + ("0" if bad_id[17] != "0" else "1")  # check digit wrong
    rows[700][5] = ""  # a required face field missing
    rows[1300][0] = "no_such_licence"  # an unknown licence type
    rows[1900][0] = "food_business_license"  # another type than the job's (organisations')
    rows[2500] = list(rows[2499])  # the same licence as the row before
    rows[3100][2] = ""  # no holder name
    rows[3700][4] = "61011319900101123"  # a face ID number of 17 digits
    rows[4200][6] = "2026-02-30"  # not a date
    rows[4600][6], rows[4600][7] = "2027-01-01", "2026-01-01"  # validity ends before it starts
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    lines = out.getvalue().splitlines()
    lines[4801] = lines[4801] + ",extra"  # a row with one column too many (row 4800 is CSV line 4802)
    expected = {102: "invalid_citizen_id", 702: "invalid_fields", 1302: "unknown_licence_type",
                1902: "type_mismatch", 2502: "duplicate_row", 3102: "invalid_holder", 3702: "invalid_fields",
                4202: "invalid_validity", 4602: "invalid_validity", 4802: "invalid_row"}
    return "\n".join(lines) + "\n", expected


def test_a_bulk_job_of_5000_rows_with_ten_bad_ones(suite):
    gateway = suite.base_url("gateway")
    admin = {"Authorization": "Bearer " + client_token(suite, "xsn-admin", scope="licenses:admin",
                                                       resource="xsn:licenses")["access_token"]}
    added = requests.post(f"{gateway}/licenses/types", json=TYPE, headers=admin, timeout=30)
    assert added.status_code == 201, added.text
    issuer = {"Authorization": "Bearer " + client_token(suite, ISSUER, scope="licenses:issue",
                                                        resource="xsn:licenses")["access_token"]}
    body, expected = _upload_text()
    made = requests.post(f"{gateway}/licenses/bulk-jobs?type_code={TYPE['slug']}&format=csv", data=body.encode(),
                         headers={**issuer, "Content-Type": "text/csv"}, timeout=60)
    assert made.status_code == 201, made.text[:2000]
    job = made.json()
    assert (job["total"], job["invalid"], job["pending"], job["issued"]) == (ROWS, 10, ROWS - 10, 0)
    assert {e["line"]: e["code"] for e in job["errors"]} == expected, job["errors"]
    assert all(e["reason"] for e in job["errors"])
    url = f"{gateway}/licenses/bulk-jobs/{job['id']}"

    # a runner of its own, killed part-way (its lease: 3 s)
    with process([sys.executable, "-m", "common.ops.cli", "licenses", "run-bulk-job", job["id"]],
                 env={**suite.child_env(), "XSN_LICENSES_BULK_LEASE_SECONDS": "3"}) as runner:

        def issued_200() -> bool:
            assert runner.poll() is None, "the runner exited before it was killed"
            return requests.get(url, headers=issuer, timeout=30).json()["issued"] >= 200

        wait_for(issued_200, 120, "the runner issuing 200 licences", interval=0.1)
        os.killpg(runner.pid, signal.SIGKILL)  # a crash: no chance to give its lease back
        runner.wait(10)
    killed_at = requests.get(url, headers=issuer, timeout=30).json()
    assert killed_at["status"] == "running" and 200 <= killed_at["issued"] < ROWS - 10, killed_at

    # carried on through the gateway: refused while the dead runner's lease lasts, then resumed
    deadline = time.monotonic() + 600
    while True:
        ran = requests.post(f"{url}/run", headers=issuer, timeout=90)
        assert ran.status_code in (200, 409), ran.text
        if ran.status_code == 409:
            assert ran.json()["code"] == "bulk_job_running"
        elif ran.json()["status"] == "done":
            break
        assert time.monotonic() < deadline, ran.text
        time.sleep(0.5 if ran.status_code == 409 else 0)
    done = ran.json()
    assert (done["issued"], done["invalid"], done["pending"], done["last_error"]) == (ROWS - 10, 10, 0, None)
    assert {e["line"]: e["code"] for e in done["errors"]} == expected

    with service_database(suite, "licenses") as engine, engine.connect() as db:
        licences = db.execute(text("SELECT identifier, status, signature_id, document_sm3 FROM licences "
                                   "WHERE type_code = :t"), {"t": TYPE["code"]}).all()
        made_rows = db.execute(text("SELECT count(*), count(DISTINCT licence_id) FROM bulk_rows "
                                    "WHERE job_id = :j AND status = 'issued'"), {"j": job["id"]}).one()
    assert len(licences) == ROWS - 10 and {row.status for row in licences} == {"valid"}
    assert len({row.identifier for row in licences}) == len({row.signature_id for row in licences}) == ROWS - 10
    assert tuple(made_rows) == (ROWS - 10, ROWS - 10)
    identifiers = {row.identifier for row in licences}
    with service_database(suite, "seal") as engine, engine.connect() as db:
        signed = db.execute(text("SELECT property_info, batch_id FROM signatures WHERE property_info LIKE :p"),
                            {"p": f"%.{TYPE['code']}.%"}).all()
        sample = db.execute(text("SELECT signature_der FROM signatures WHERE id = :id"),
                            {"id": licences[1234].signature_id}).scalar_one()
    assert sorted(row.property_info for row in signed) == sorted(identifiers)  # each signed once, in batches
    assert all(row.batch_id for row in signed)
    check = requests.post(f"{gateway}/seal/verify", timeout=30, json={
        "signature_base64": base64.b64encode(sample).decode(), "digest": licences[1234].document_sm3})
    assert check.status_code == 200 and check.json()["valid"] is True, check.text
