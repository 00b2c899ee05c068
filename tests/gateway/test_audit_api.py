"""The auditor API: search filters, scope (401/403), bundles, and every auditor query audited."""

from __future__ import annotations

import json

import pytest

from common.db import get_db
from gateway.audit import evidence, log


def record(i: int, **extra) -> dict:
    return {"kind": "request", "time": f"2026-12-0{1 + i % 3}T10:00:{i:02d}+00:00", "request_id": f"req-{i}",
            "client_id": "xsn-payment" if i % 2 else "xsn-licenses", "subject": f"person-{i % 3}", "method": "GET",
            "route": "/payment/notices/*" if i % 2 else "/licenses/licenses/*", "path": f"/x/{i}",
            "status": 404 if i % 4 == 0 else 200, "outcome": "ok", "upstream": "payment", **extra}


@pytest.fixture
def app(make_app, tokens):
    app = make_app("gateway", AUDIT_CHECKPOINT_INTERVAL=0)
    tokens.install(app)
    with get_db(app).session() as session:
        log.append_records(session, [record(i) for i in range(12)])
        session.commit()
    return app


@pytest.fixture
def auditor(tokens):
    return tokens.bearer(sub="auditor-7", scope="audit:read", aud="xsn:gateway", client_id="xsn-auditor")


def search(client, auditor, **params):
    response = client.get("/audit/records", query_string=params, headers=auditor)
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    return [item["record"]["request_id"] for item in items if item["record"]["kind"] == "request"]


def test_search_filters(app, auditor):
    client = app.test_client()
    assert search(client, auditor, request_id="req-5") == ["req-5"]
    payment = {f"req-{i}" for i in range(1, 12, 2)}
    assert set(search(client, auditor, client_id="xsn-payment", kind="request")) == payment
    assert set(search(client, auditor, subject="person-0", kind="request")) == {"req-0", "req-3", "req-6", "req-9"}
    assert set(search(client, auditor, route="/licenses/licenses/*")) == {f"req-{i}" for i in range(0, 12, 2)}
    assert set(search(client, auditor, status=404)) == {"req-0", "req-4", "req-8"}
    assert set(search(client, auditor, since="2026-12-02T00:00:00+00:00", until="2026-12-03T00:00:00+00:00",
                      kind="request")) == {"req-1", "req-4", "req-7", "req-10"}
    assert search(client, auditor, request_id="nothing-like-it") == []


def test_bad_search_is_a_problem(app, auditor):
    response = app.test_client().get("/audit/records?status=99&since=yesterday", headers=auditor)
    assert response.status_code == 422 and response.content_type == "application/problem+json"


def test_token_and_scope_are_required(app, tokens):
    client = app.test_client()
    assert client.get("/audit/records").status_code == 401
    wrong_scope = tokens.bearer(sub="p", scope="seal:read", aud="xsn:gateway", client_id="xsn-x")
    refused = client.get("/audit/records", headers=wrong_scope)
    assert refused.status_code == 403 and refused.get_json()["code"] == "insufficient_scope"
    wrong_audience = tokens.bearer(sub="p", scope="audit:read", aud="xsn:seal", client_id="xsn-x")
    assert client.get("/audit/export?start=0&end=1", headers=wrong_audience).status_code == 401


def test_auditor_queries_are_audited_into_the_log(app, auditor, tokens):
    client = app.test_client()
    client.get("/audit/records?request_id=req-3", headers=auditor)
    client.get("/audit/records", headers=tokens.bearer(sub="nosy", scope="", aud="xsn:gateway", client_id="c"))
    client.get("/audit/records")
    with get_db(app).session() as session:
        queries = [json.loads(r.leaf) for r in log.search(session, log.SearchQuery(kind="audit_query"))[0]]
    queries.reverse()
    assert [(q["subject"], q["status"], q["outcome"]) for q in queries] == [
        ("auditor-7", 200, "ok"), ("nosy", 403, "denied"), (None, 401, "denied")]
    assert queries[0]["query"] == {"request_id": ["req-3"]} and queries[0]["route"] == "audit:Records"
    assert queries[1]["reason"] == "insufficient_scope"


def test_a_query_that_cannot_be_audited_is_refused(app, auditor, monkeypatch):
    def broken(_session, _records):
        raise OSError("disk gone")

    monkeypatch.setattr(log, "append_records", broken)
    response = app.test_client().get("/audit/records", headers=auditor)
    assert response.status_code == 503 and response.get_json()["code"] == "audit_unavailable"
    assert "items" not in response.get_json()


def test_export_and_record_bundles_verify_offline(app, auditor):
    client = app.test_client()
    exported = client.get("/audit/export?start=2&end=9", headers=auditor)
    assert exported.status_code == 200, exported.get_json()
    bundle = exported.get_json()
    keys = client.get("/audit/keys", headers=auditor).get_json()["keys"]
    pem = keys[0]["public_key_pem"]
    assert [r["index"] for r in bundle["records"]] == list(range(2, 9))
    assert evidence.verify_bundle(bundle, pem).ok
    one = client.get("/audit/records/5", headers=auditor).get_json()
    assert one["record"]["request_id"] == "req-5" and evidence.verify_bundle(one["bundle"], pem).ok
    assert client.get("/audit/records/100000", headers=auditor).status_code == 404
    assert client.get("/audit/export?start=5&end=2", headers=auditor).status_code == 422


def test_consistency_proof(app, auditor):
    client = app.test_client()
    first = client.get("/audit/checkpoint", headers=auditor).get_json()
    with get_db(app).session() as session:
        log.append_records(session, [record(i) for i in range(20, 25)])
        session.commit()
    latest = client.get("/audit/checkpoint", headers=auditor).get_json()
    proof = client.get(f"/audit/proof/consistency?first={first['tree_size']}&second={latest['tree_size']}",
                       headers=auditor).get_json()
    from common.crypto import merkle

    assert latest["tree_size"] >= first["tree_size"] + 5
    merkle.verify_consistency(first["tree_size"], proof["second"], bytes.fromhex(first["root_hash"]),
                              bytes.fromhex(latest["root_hash"]), [bytes.fromhex(h) for h in proof["proof"]])


def test_every_auditor_view_needs_the_scope_and_the_consistency_view_refuses_sizes_out_of_order(app, auditor,
                                                                                              tokens):
    client = app.test_client()
    views = [rule.rule.replace("<bigint:index>", "1") for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith("gateway_audit.")]
    assert "/audit/proof/consistency" in views and len(views) >= 6
    wrong_scope = tokens.bearer(sub="p", scope="seal:read", aud="xsn:gateway", client_id="xsn-x")
    assert {view: client.get(view).status_code for view in views} == dict.fromkeys(views, 401)
    assert {view: client.get(view, headers=wrong_scope).status_code for view in views} == dict.fromkeys(views, 403)
    # (Every query is appended to the log itself: the latest size grows with each request.)
    refused = client.get("/audit/proof/consistency?first=100000", headers=auditor)  # beyond the tree
    assert refused.status_code == 400 and refused.get_json()["code"] == "audit_range_invalid"
    # Out of order: refused from the query, as the seal's log does (common.web.auditor_api).
    refused = client.get("/audit/proof/consistency?first=3&second=2", headers=auditor)
    assert refused.status_code == 422 and refused.get_json()["code"] == "validation_failed"
    with get_db(app).session() as session:
        [last] = log.search(session, log.SearchQuery(kind="audit_query"), per_page=1)[0]
    assert json.loads(last.leaf)["route"] == "audit:Consistency"
