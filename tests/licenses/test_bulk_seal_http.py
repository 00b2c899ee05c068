"""Bulk issuance against the real seal node over HTTP: a chunk interrupted after the seal node
signed it is rebuilt into the very same batch (the node compares a replay's items with the
first request's and refuses any difference), and its licences carry the first signatures."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from common.db import get_db, utcnow
from licenses import issuing
from licenses.bulk import jobs
from licenses.models import BulkJob, Licence
from licenses.seed import demo_food_bulk_csv
from tests.licenses.test_seal_http import http_seal, seal_url  # noqa: F401 (fixtures)


def test_a_killed_chunk_is_replayed_by_the_seal_node_and_verifies(h, app, http_seal, seal_url,  # noqa: F811
                                                                   monkeypatch):
    made = h.client.post(f"/bulk-jobs?type_code={h.FOOD}", data=demo_food_bulk_csv(12).encode(), headers=h.issuer,
                         content_type="text/csv")
    assert made.status_code == 201, made.get_json()
    job_id = made.get_json()["id"]
    deps = app.extensions["licenses"]["deps"]
    first: dict[str, list] = {}
    original = http_seal.sign_batch

    def dies_once_signed(seal_id, items, *, idempotency_key):
        signatures = original(seal_id, items, idempotency_key=idempotency_key)
        if not first:
            first[idempotency_key] = signatures
            raise KeyboardInterrupt
        return signatures

    http_seal.sign_batch = dies_once_signed
    session = get_db(app).sessionmaker()
    job = session.get(BulkJob, job_id)
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(session, deps, job, batch=5, inflight=1)
    session.close()
    session = get_db(app).sessionmaker()
    job = session.get(BulkJob, job_id)
    job.lease_until = utcnow() - timedelta(seconds=1)
    session.commit()
    first_day = issuing.today()
    monkeypatch.setattr(issuing, "today", lambda: first_day + timedelta(days=1))  # resumed the next day
    jobs.run_job(session, deps, job, batch=5, inflight=1)
    assert (job.status, job.issued) == ("done", 12)
    licences = list(session.scalars(select(Licence)))
    session.close()
    (signatures,) = first.values()
    assert {s.signature_id for s in signatures} <= {lic.signature_id for lic in licences}
    assert len({lic.signature_id for lic in licences}) == 12
    first_lines = {lic.identifier for lic in licences if lic.signature_id in {s.signature_id for s in signatures}}
    days = {lic.identifier: json.loads(issuing.document_of(deps, lic))["issue_date"] for lic in licences}
    assert {days[i] for i in first_lines} == {first_day.isoformat()}  # replayed as first built, the day before
    for lic in licences[:3]:
        document = issuing.document_of(deps, lic)
        check = requests.post(f"{seal_url}/verify", timeout=10, json={
            "signature_base64": lic.signature_b64, "document_base64": base64.b64encode(document).decode()}).json()
        assert check["valid"] is True and check["complete"] is True, check
