"""The licences benchmark's in-process figures (``bench.licenses``): offline verification of a QR
code against the node's lists, and a bulk issuance job, with the raw SM2 signing rate it is
compared with."""

from __future__ import annotations

import time

from common.crypto.gm import SM2PrivateKey
from licenses.seed import demo_food_bulk_csv


def raw_sm2_rate(seconds: float) -> float:
    key = SM2PrivateKey.generate()
    message = bytes(range(32))
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(message)
        count += 1
    return count / (time.perf_counter() - start)


def offline(app, holder: dict) -> dict:
    """One offline code, verified repeatedly against the node's lists in this thread."""
    from licenses import offline_codes

    client = app.test_client()
    auth_id = client.get(f"/my/licences/{client.get('/my/licences', headers=holder).get_json()[0]['id']}"
                         "/authorisations", headers=holder).get_json()[0]["id"]
    code = client.post(f"/my/authorisations/{auth_id}/offline-code", headers=holder).get_json()["code"]
    trust = offline_codes.TrustList.from_json(client.get("/offline/trust-list").get_json())
    status = offline_codes.StatusList.from_json(client.get("/offline/status-list").get_json(), trust)
    count, start, cpu_start = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < 3.0:
        offline_codes.verify_code(code, trust, status)
        count += 1
    offline_rate = count / (time.perf_counter() - start)
    # the thread's own CPU per verification: steadier than the rate when other work shares the cores
    offline_cpu_us = 1e6 * (time.thread_time() - cpu_start) / count
    return {"offline_verify_per_s": round(offline_rate, 1), "offline_cpu_us_per_verify": round(offline_cpu_us, 1)}


def bulk(args, app, issuer: dict, raw_before: float) -> dict:
    """A bulk job of ``--bulk-rows`` rows uploaded, then run in this process."""
    from common.db import get_db
    from common.peers.seal_client import MemorySealClient, NoSealForIssuer, SealUnavailable
    from licenses.bulk import jobs
    from licenses.config import APPROVAL_BUREAU
    from licenses.issuing import Deps
    from licenses.models import BulkJob

    node = app.extensions["licenses"]
    client = app.test_client()
    text_rows = demo_food_bulk_csv(args.bulk_rows)
    started = time.perf_counter()
    made = client.post("/bulk-jobs?type_code=food_business_license&format=csv", data=text_rows.encode(),
                       headers=issuer, content_type="text/csv")
    assert made.status_code == 201, made.get_json()
    validate_s = time.perf_counter() - started
    job_id = made.get_json()["id"]
    bulk_seal = "seal node batch API"
    seal = node["deps"].seal
    try:
        seal.sign_batch(seal.seal_for(APPROVAL_BUREAU[1], "license"), [("00" * 32, "probe")],
                        idempotency_key=f"probe-{time.time()}")
    except (NoSealForIssuer, SealUnavailable):
        bulk_seal = "in-process (the seal node has no batch API yet)"
        node["deps"] = Deps(cipher=node["deps"].cipher, seal=MemorySealClient())
    started = time.perf_counter()
    with app.app_context(), get_db(app).session() as session:
        job = session.get(BulkJob, job_id)
        while job.status in ("validated", "running"):
            jobs.run_job(session, node["deps"], job, batch=int(app.config["LICENSES_BULK_BATCH"]), max_seconds=600,
                         inflight=int(app.config["LICENSES_BULK_INFLIGHT"]))
        issued = job.issued
    issue_s = time.perf_counter() - started
    get_db(app).engine.dispose()
    raw = (raw_before + raw_sm2_rate(2.0)) / 2
    bulk_rate = issued / issue_s
    return {"bulk_issue_ratio": round(bulk_rate / raw, 4), "raw_sm2_sign_per_s": round(raw, 1),
            "bulk_rows": args.bulk_rows, "bulk_issued": issued, "bulk_validate_s": round(validate_s, 2),
            "bulk_issue_per_s": round(bulk_rate, 1), "bulk_seal": bulk_seal}
