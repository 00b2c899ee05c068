"""The gateway's audit log through the real processes (issue 10, "Audit log of every call").

Every request through the edge leaves a record in the durable log that the auditor API finds
by its request id; ``xsn audit verify`` passes on the suite's log and fails after a direct
database edit of one record.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import text

from tests.support.suite import client_token, service_database

pytestmark = pytest.mark.e2e


def _auditor(suite) -> dict[str, str]:
    token = client_token(suite, "xsn-auditor", scope="audit:read")["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _find(suite, headers: dict[str, str], request_id: str, count: int = 1, wait: float = 10.0) -> list[dict]:
    """The auditor API's answer for ``request_id`` once the writer has moved ``count`` records."""
    deadline = time.monotonic() + wait
    while True:
        response = requests.get(f"{suite.base_url('gateway')}/gateway/audit/records", headers=headers,
                                params={"request_id": request_id}, timeout=10)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_every_request_leaves_a_record_the_auditor_finds_by_request_id(suite):
    gateway = suite.base_url("gateway")
    calls = {  # outcome -> (method, path); each through the gateway with our own request id
        "ok": ("GET", "/seal/livez"),
        "denied": ("GET", "/seal/seals"),  # no token
        "rejected": ("GET", "/seal/x/%2e%2e/y"),  # path traversal: nothing forwarded
        "unlisted": ("GET", "/licenses/no/such/thing"),  # a path no route lists, no token: 401
    }
    statuses = {}
    for outcome, (method, path) in calls.items():
        response = requests.request(method, f"{gateway}{path}", headers={"X-Request-ID": f"audit-e2e-{outcome}"},
                                    timeout=10)
        assert response.headers["X-Request-ID"] == f"audit-e2e-{outcome}"
        statuses[outcome] = response.status_code
    headers = _auditor(suite)
    found = {outcome: _find(suite, headers, f"audit-e2e-{outcome}") for outcome in calls}
    for outcome, items in found.items():
        assert len(items) == 1, (outcome, items)
        record = items[0]["record"]
        assert record["status"] == statuses[outcome] and record["method"] == "GET"
        assert "authorization" not in json.dumps(record).lower()
    assert found["ok"][0]["record"]["outcome"] == "ok" and found["ok"][0]["record"]["upstream"] == "seal"
    assert found["denied"][0]["record"]["outcome"] == "denied"
    assert found["rejected"][0]["record"]["reason"] == "path_traversal"
    # The auditor's own search is audited twice under its request id: the edge's record of the
    # call and the auditor API's record of the query.
    search = requests.get(f"{gateway}/gateway/audit/records", headers={**headers, "X-Request-ID": "audit-e2e-query"},
                          params={"request_id": "audit-e2e-ok"}, timeout=10)
    assert search.status_code == 200
    query_records = _find(suite, headers, "audit-e2e-query", count=2)
    by_kind = {item["record"].get("kind", "request"): item["record"] for item in query_records}
    assert len(query_records) == 2, query_records
    assert by_kind["request"]["route"] == "/gateway/audit/**" and by_kind["request"]["upstream"] == "gateway_admin"


def test_the_auditor_api_needs_audit_read(suite):
    gateway = suite.base_url("gateway")
    assert requests.get(f"{gateway}/gateway/audit/records", timeout=10).status_code == 401
    admin = client_token(suite, "xsn-admin")["access_token"]  # no xsn:gateway audience, no audit:read
    refused = requests.get(f"{gateway}/gateway/audit/records", headers={"Authorization": f"Bearer {admin}"},
                           timeout=10)
    assert refused.status_code in (401, 403) and refused.headers["Content-Type"] == "application/problem+json"
    console = requests.get(f"{gateway}/gateway/audit/console/", timeout=10, allow_redirects=False)
    assert console.status_code in (200, 302, 303)  # public at the gateway: the console signs people in


def _audit_cli(suite, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "common.ops.cli", "audit", *args], env=suite.child_env(),
                          capture_output=True, text=True, timeout=120)


def test_audit_verify_passes_then_catches_a_direct_database_edit(suite):
    gateway = suite.base_url("gateway")
    requests.get(f"{gateway}/seal/livez", headers={"X-Request-ID": "audit-e2e-tamper"}, timeout=10)
    index = _find(suite, _auditor(suite), "audit-e2e-tamper")[0]["index"]
    clean = _audit_cli(suite, "verify")
    assert clean.returncode == 0 and "VERIFIED" in clean.stdout, clean.stdout + clean.stderr

    with service_database(suite, "gateway") as engine:
        try:
            with engine.begin() as connection:
                leaf = connection.execute(text("SELECT leaf FROM audit_records WHERE leaf_index = :i"),
                                          {"i": index}).scalar_one()
                edited = leaf.replace('"status":200', '"status":201')
                assert edited != leaf
                connection.execute(text("UPDATE audit_records SET leaf = :leaf WHERE leaf_index = :i"),
                                   {"leaf": edited, "i": index})
            tampered = _audit_cli(suite, "verify", "--json")
            assert tampered.returncode == 1, tampered.stdout + tampered.stderr
            assert "leaf_hash_mismatch" in tampered.stdout
        finally:  # the suite is shared by the session's other tests: put the record back
            with engine.begin() as connection:
                connection.execute(text("UPDATE audit_records SET leaf = :leaf WHERE leaf_index = :i"),
                                   {"leaf": leaf, "i": index})
    assert _audit_cli(suite, "verify").returncode == 0
