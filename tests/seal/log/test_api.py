"""The auditor API: proofs verified with common.crypto.merkle, checkpoints with common.crypto.signed_note."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785

from common.crypto import merkle
from common.crypto.gm import SM2PublicKey, sm3
from common.crypto.signed_note import compute_key_hint, verify_note
from common.db import get_db
from seal.log import appends
from tests.seal.log.events import ORIGIN


def event(i: int) -> dict:
    return {"type": "sign", "time": (datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=i)).isoformat(),
            "seal_id": f"seal-{i % 2}", "seal_code": f"61010000000000{i % 2}", "org_code": "91610100MA6TG8XX0X",
            "signer": "staff-7", "client_id": "licenses", "document_digest": sm3(b"d%d" % i).hex(),
            "signature_digest": sm3(b"s%d" % i).hex(), "request_id": f"r{i}"}


@pytest.fixture
def app(make_app, tokens):
    app = make_app("seal", SEAL_LOG_ORIGIN=ORIGIN, SEAL_LOG_CHECKPOINT_INTERVAL=3600)
    tokens.install(app)
    return app


@pytest.fixture
def auditor(tokens):
    return tokens.bearer(sub="auditor-1", scope="audit:read", client_id="audit-console")


def append(app, n: int, start: int = 0) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    with get_db(app).session() as session:
        for i in range(start + n):
            if i >= start:
                # with the stand-in signature the event's signature_digest commits to (self-check)
                appends.append_event(session, event(i), ses_der=b"s%d" % i)
        session.commit()
    for i in range(start + n):
        tree.append(rfc8785.dumps(event(i)))
    return tree


def log_key(client, auditor) -> tuple[SM2PublicKey, bytes]:
    keys = client.get("/log/keys", headers=auditor).get_json()
    assert keys["origin"] == ORIGIN
    key = keys["keys"][0]
    public = SM2PublicKey.from_pem(key["public_key_pem"].encode())
    assert key["key_hint"] == compute_key_hint(ORIGIN, public.to_der()).hex()
    return public, public.to_der()


def checkpoint_of(client, auditor, note: str):
    public, der = log_key(client, auditor)
    return verify_note(note, ORIGIN, public, der, origin=ORIGIN)


@pytest.mark.parametrize("path", ["/log/checkpoint", "/log/checkpoints", "/log/entries?start=0&end=1",
                                  "/log/entries/0", "/log/proof/inclusion?leaf_hash=" + "00" * 32,
                                  "/log/proof/consistency?first=0", "/log/search", "/log/keys",
                                  "/log/self-check", "/log/audit-queries"])
def test_every_route_needs_an_audit_read_token(tokens, client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    other = tokens.bearer(scope="seal:sign")
    response = client.get(path, headers=other)
    assert response.status_code == 403
    assert response.get_json()["code"] == "insufficient_scope"


def test_latest_checkpoint_is_signed_by_the_published_key(app, client, auditor):
    tree = append(app, 6)
    body = client.get("/log/checkpoint", headers=auditor).get_json()
    checkpoint = checkpoint_of(client, auditor, body["note"])
    assert (checkpoint.size, checkpoint.root_hash) == (6, tree.root())
    assert body["root_hash"] == tree.root().hex()


def test_entry_comes_with_an_inclusion_proof_and_a_covering_checkpoint(app, client, auditor):
    append(app, 4)
    client.get("/log/checkpoint", headers=auditor)  # size 4, fresh for an hour
    tree = append(app, 3, start=4)
    body = client.get("/log/entries/5", headers=auditor).get_json()
    assert body["entry"]["event"] == event(5)
    assert body["entry"]["leaf"] == rfc8785.dumps(event(5)).decode()
    checkpoint = checkpoint_of(client, auditor, body["checkpoint"]["note"])
    assert checkpoint.size == body["tree_size"] == 7  # published on demand: 4 did not cover entry 5
    proof = [bytes.fromhex(h) for h in body["inclusion_proof"]]
    merkle.verify_inclusion(bytes.fromhex(body["entry"]["leaf_hash"]), 5, 7, proof, checkpoint.root_hash)
    assert bytes.fromhex(body["entry"]["leaf_hash"]) == tree.get_node(0, 5)
    # Against an older checkpoint on request.
    old = client.get("/log/entries/1?tree_size=4", headers=auditor).get_json()
    merkle.verify_inclusion(tree.get_node(0, 1), 1, 4, [bytes.fromhex(h) for h in old["inclusion_proof"]],
                            tree.root(4))
    assert client.get("/log/entries/1?tree_size=5", headers=auditor).get_json()["code"] == "checkpoint_not_found"


def test_negative_proofs_are_rejected(app, client, auditor):
    tree = append(app, 7)
    body = client.get("/log/entries/3", headers=auditor).get_json()
    proof = [bytes.fromhex(h) for h in body["inclusion_proof"]]
    leaf, root = tree.get_node(0, 3), tree.root()
    swapped = [proof[1], proof[0], *proof[2:]]
    for bad_index, bad_proof in [(2, proof), (3, proof[:-1]), (3, proof + [root]), (3, swapped)]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, bad_index, 7, bad_proof, root)


def test_entries_by_range(app, client, auditor):
    append(app, 5)
    items = client.get("/log/entries?start=1&end=4", headers=auditor).get_json()["items"]
    assert [e["index"] for e in items] == [1, 2, 3]
    assert items[0]["event"] == event(1)


def test_inclusion_by_leaf_hash_and_consistency(app, client, auditor):
    tree = append(app, 9)
    client.get("/log/checkpoint", headers=auditor)
    body = client.get(f"/log/proof/inclusion?leaf_hash={tree.get_node(0, 6).hex().upper()}",
                      headers=auditor).get_json()
    assert (body["leaf_index"], body["tree_size"]) == (6, 9)
    merkle.verify_inclusion(tree.get_node(0, 6), 6, 9, [bytes.fromhex(h) for h in body["inclusion_proof"]],
                            checkpoint_of(client, auditor, body["checkpoint"]["note"]).root_hash)
    for first, second in [(3, 9), (4, 8), (0, 9), (9, 9)]:
        url = f"/log/proof/consistency?first={first}&second={second}"
        proof = [bytes.fromhex(h) for h in client.get(url, headers=auditor).get_json()["proof"]]
        merkle.verify_consistency(first, second, tree.root(first), tree.root(second), proof)
    default = client.get("/log/proof/consistency?first=5", headers=auditor).get_json()
    assert default["second"] == 9
    unknown = client.get(f"/log/proof/inclusion?leaf_hash={'ab' * 32}", headers=auditor)
    assert unknown.status_code == 404 and unknown.get_json()["code"] == "log_leaf_not_found"


@pytest.mark.parametrize("path, status, code", [
    ("/log/entries?start=3&end=99", 400, "log_range_invalid"),
    ("/log/entries?start=0&end=500", 400, "log_range_invalid"),
    ("/log/entries?start=-1&end=2", 422, "validation_failed"),
    ("/log/entries?start=x&end=2", 422, "validation_failed"),
    ("/log/entries/99", 404, "log_entry_not_found"),
    ("/log/proof/consistency?first=4&second=2", 422, "validation_failed"),
    ("/log/proof/consistency?first=2&second=50", 400, "log_range_invalid"),
    ("/log/proof/inclusion?leaf_hash=zz", 422, "validation_failed"),
    ("/log/proof/inclusion?leaf_hash=" + "g" * 64, 422, "validation_failed"),
    ("/log/search?document_digest=abc", 422, "validation_failed"),
    ("/log/search?since=2026-01-01T00:00:00", 422, "validation_failed"),
    ("/log/checkpoints?per_page=1000", 422, "validation_failed"),
    # Numbers beyond what a database holds (found by schemathesis: each was a 500 on SQLite).
    (f"/log/entries/{2**64}", 404, "not_found"),
    (f"/log/entries/0?tree_size={2**64}", 422, "validation_failed"),
    (f"/log/checkpoints?page={2**80}", 422, "validation_failed"),
    (f"/log/search?page={2**80}", 422, "validation_failed"),
    (f"/log/entries?start={2**64}&end={2**64 + 1}", 422, "validation_failed"),
    (f"/log/proof/consistency?first=1&second={2**64}", 422, "validation_failed"),
    (f"/log/proof/inclusion?leaf_hash={'ab' * 32}&tree_size={2**63}", 422, "validation_failed"),
])
def test_bad_input_is_a_problem(app, client, auditor, path, status, code):
    append(app, 5)
    response = client.get(path, headers=auditor)
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code


def test_search_and_historical_checkpoints(app, client, auditor):
    append(app, 6)
    body = client.get("/log/search?seal_code=610100000000001&per_page=2", headers=auditor).get_json()
    assert body["total"] == 3 and [e["index"] for e in body["items"]] == [5, 3]
    digest = event(2)["document_digest"]
    assert [e["index"] for e in client.get(f"/log/search?document_digest={digest}",
                                           headers=auditor).get_json()["items"]] == [2]
    since = "2026-03-01T08:00:02%2B08:00"  # = 00:00:02 UTC
    body = client.get(f"/log/search?since={since}&signer=staff-7", headers=auditor).get_json()
    assert [e["index"] for e in body["items"]] == [5, 4, 3, 2]
    client.get("/log/checkpoint", headers=auditor)
    append(app, 2, start=6)
    client.get("/log/entries/7", headers=auditor)
    page = client.get("/log/checkpoints", headers=auditor).get_json()
    assert [c["tree_size"] for c in page["items"]] == [8, 6] and page["total"] == 2
    spec = client.get("/openapi.json").get_json()
    assert "not itself proven" in spec["paths"]["/log/search"]["get"]["description"]


def test_auditor_queries_are_recorded_and_visible(app, client, auditor):
    append(app, 2)
    client.get("/log/entries/1", headers=auditor)
    client.get("/log/entries/9", headers=auditor)
    client.get("/log/search?signer=someone")
    page = client.get("/log/audit-queries", headers=auditor).get_json()
    rows = {(r["action"], r["status"], r["outcome"], r["subject"]) for r in page["items"]}
    assert ("EntryProof", 200, "success", "auditor-1") in rows
    assert ("EntryProof", 404, "failure", "auditor-1") in rows
    assert ("Search", 401, "denied", None) in rows
    assert any(json.loads(r["query"])["args"] == {"signer": "someone"} for r in page["items"])
    assert all(r["client_id"] == "audit-console" for r in page["items"] if r["subject"])


def test_self_check_endpoint_reports_ok(app, client, auditor):
    append(app, 5)
    client.get("/log/checkpoint", headers=auditor)
    body = client.get("/log/self-check", headers=auditor).get_json()
    assert body["ok"] is True and body["size"] == 5 and body["checkpoints_checked"] == 1


def test_ses_signature_travels_with_the_entry(app, client, auditor):
    der = b"\x30\x00"
    ev = dict(event(0), signature_digest=sm3(der).hex())
    with get_db(app).session() as session:
        appends.append_event(session, ev, ses_der=der)
        session.commit()
    body = client.get("/log/entries/0", headers=auditor).get_json()
    assert base64.b64decode(body["entry"]["ses_signature"]) == der
