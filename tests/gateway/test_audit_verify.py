"""Tamper evidence: a changed, deleted or inserted record fails `verify`; consistency with a saved checkpoint;
exported bundles verify offline and fail when edited."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from common.crypto import merkle
from common.db import get_db
from gateway.audit import checkpoints, evidence, log
from gateway.audit.verify import verify_log
from tests.conftest import TEST_KEK

KEK = bytes.fromhex(TEST_KEK)
ORIGIN = "xsn.xian/gateway-audit-log"


def leaf_record(i: int) -> dict:
    return {"kind": "request", "time": f"2026-12-01T10:{i // 60:02d}:{i % 60:02d}+00:00", "request_id": f"req-{i}",
            "client_id": "xsn-payment" if i % 3 else "xsn-licenses", "subject": f"person-{i % 4}", "method": "GET",
            "route": "/payment/notices/*", "path": f"/payment/notices/{i}", "status": 200 if i % 5 else 404,
            "outcome": "ok", "upstream": "payment", "latency_ms": 2, "bytes_in": 0, "bytes_out": 99}


@pytest.fixture
def app(make_app):
    return make_app("gateway")


def fill(app, n: int, *, checkpoint: bool = True) -> None:
    with get_db(app).session() as session:
        log.append_records(session, [leaf_record(i) for i in range(log.log_size(session), n)])
        session.commit()
        if checkpoint:
            checkpoints.publish(session, checkpoints.load_signer(session, KEK, ORIGIN))


def run_verify(app, older: str | None = None):
    with get_db(app).session() as session:
        return verify_log(session, checkpoints.verifiers(session, KEK, ORIGIN), older_note=older)


def codes(report) -> set[str]:
    return {p["code"] for p in report.problems}


def sql(app, statement: str, **params) -> None:
    with get_db(app).engine.begin() as conn:
        conn.execute(text(statement), params)


def test_an_untouched_log_verifies(app):
    fill(app, 5)
    fill(app, 13)
    report = run_verify(app)
    assert report.ok, report.problems
    assert (report.size, report.records_checked, report.checkpoints_checked) == (13, 13, 2)


def test_changed_record_is_detected(app):
    fill(app, 9)
    sql(app, "UPDATE audit_records SET leaf = replace(leaf, :a, :b) WHERE leaf_index = 5",
        a='"status":404', b='"status":200')
    assert "leaf_hash_mismatch" in codes(run_verify(app))


def test_changed_record_with_recomputed_hashes_is_still_detected(app):
    """An editor who rewrites the leaf, its hash and every node is caught by the signed checkpoint."""
    fill(app, 8)
    with get_db(app).session() as session:
        rows = log.records_range(session, 0, 8)
        leaves = [r.leaf for r in rows]
    forged = json.loads(leaves[5])
    forged["status"] = 200
    leaves[5] = log.canonical_leaf(forged).decode()
    tree = merkle.MemoryTree()
    for leaf in leaves:
        tree.append(leaf.encode())
    sql(app, "UPDATE audit_records SET leaf = :leaf, leaf_hash = :h, status = 200 WHERE leaf_index = 5",
        leaf=leaves[5], h=tree.get_node(0, 5))
    for (level, index), h in tree._nodes.items():
        sql(app, "UPDATE audit_nodes SET hash = :h WHERE level = :l AND node_index = :i", h=h, l=level, i=index)
    found = codes(run_verify(app))
    assert found == {"checkpoint_root_mismatch"}


def test_deleted_record_is_detected(app):
    fill(app, 6)
    sql(app, "DELETE FROM audit_records WHERE leaf_index = 2")
    assert "record_missing" in codes(run_verify(app))


def test_inserted_record_is_detected(app):
    fill(app, 6)
    values = log.row_values(leaf_record(99), 6)
    sql(app, "INSERT INTO audit_records (leaf_index, leaf, leaf_hash, kind, time, request_id) "
        "VALUES (:i, :leaf, :h, 'request', :t, 'forged')", i=6, leaf=values["leaf"], h=values["leaf_hash"],
        t=values["time"].strftime("%Y-%m-%d %H:%M:%S.%f"))
    assert "record_beyond_head" in codes(run_verify(app))
    sql(app, "UPDATE audit_head SET size = 7")  # also moving the head leaves the tree without its nodes
    assert "node_missing" in codes(run_verify(app))


def test_changed_search_column_is_detected(app):
    fill(app, 4)
    sql(app, "UPDATE audit_records SET subject = 'someone-else' WHERE leaf_index = 1")
    assert codes(run_verify(app)) == {"column_mismatch"}


def test_consistency_with_an_older_saved_checkpoint(app):
    fill(app, 5)
    with get_db(app).session() as session:
        saved = checkpoints.newest(session).note
    fill(app, 21)
    report = run_verify(app, older=saved)
    assert report.ok and any("size 5" in note for note in report.notes)
    # History rewritten under the saved checkpoint: records 0..4 replaced, tree rebuilt, checkpoints
    # dropped and re-signed: the saved checkpoint no longer fits.
    sql(app, "DELETE FROM audit_checkpoints")
    sql(app, "UPDATE audit_records SET leaf = replace(leaf, :a, :b), request_id = 'req-X' WHERE leaf_index = 1",
        a='"req-1"', b='"req-X"')
    with get_db(app).session() as session:
        rows = log.records_range(session, 0, 21)
    tree = merkle.MemoryTree()
    for row in rows:
        tree.append(row.leaf.encode())
    sql(app, "UPDATE audit_records SET leaf_hash = :h WHERE leaf_index = 1", h=tree.get_node(0, 1))
    for (level, index), h in tree._nodes.items():
        sql(app, "UPDATE audit_nodes SET hash = :h WHERE level = :l AND node_index = :i", h=h, l=level, i=index)
    fill(app, 21)  # a fresh checkpoint over the rewritten log
    assert run_verify(app).ok  # on its own the rewritten log looks fine ...
    assert "older_checkpoint_inconsistent" in codes(run_verify(app, older=saved))  # ... the saved one catches it


def test_export_bundle_verifies_offline_and_fails_when_edited(app, tmp_path):
    fill(app, 4)
    with get_db(app).session() as session:
        older = checkpoints.newest(session).note
    fill(app, 37)
    with get_db(app).session() as session:
        bundle = evidence.export(session, kek=KEK, origin=ORIGIN, start=10, end=20, consistency_from=(4,))
    pem = bundle["public_key"]["pem"]
    assert evidence.verify_bundle(bundle, pem, older_checkpoint=older).ok
    for edit in ("change", "drop", "insert"):
        forged = json.loads(json.dumps(bundle))
        if edit == "change":
            forged["records"][3]["leaf"] = forged["records"][3]["leaf"].replace("req-13", "req-99")
        elif edit == "drop":
            del forged["records"][3]
            forged["range"]["end"] = 19
        else:
            forged["records"].insert(3, {"index": 13, "leaf": forged["records"][3]["leaf"]})
            for i, record in enumerate(forged["records"]):
                record["index"] = 10 + i
            forged["range"]["end"] = 21
        assert not evidence.verify_bundle(forged, pem).ok, edit


def test_range_proof_matches_the_reference_tree_for_every_range():
    tree = merkle.MemoryTree()
    for i in range(13):
        tree.append(b"leaf %d" % i)
    leaves = [tree.get_node(0, i) for i in range(13)]
    for size in range(1, 14):
        for start in range(size):
            for end in range(start + 1, size + 1):
                proof = evidence.range_proof(start, end, size,
                                             lambda lo, hi: merkle.root_from_leaf_hashes(leaves[lo:hi]))
                assert evidence.root_from_range(start, size, leaves[start:end], proof) == tree.root(size)


def test_cli_verify_passes_then_fails_after_a_database_edit(app, tmp_path, monkeypatch):
    fill(app, 12)
    monkeypatch.setenv("XSN_GATEWAY_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("XSN_KEK", TEST_KEK)
    monkeypatch.setenv("XSN_VAR_DIR", str(tmp_path / "var"))
    from gateway.cli import cli

    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "VERIFIED" in ok.output, ok.output
    out, key = tmp_path / "bundle.json", tmp_path / "key.pem"
    exported = runner.invoke(cli, ["audit", "export", "--out", str(out), "--start", "2", "--end", "9",
                                   "--key-out", str(key)])
    assert exported.exit_code == 0, exported.output
    offline = runner.invoke(cli, ["audit", "verify", "--bundle", str(out), "--key", str(key)])
    assert offline.exit_code == 0 and "VERIFIED" in offline.output, offline.output
    sql(app, "DELETE FROM audit_records WHERE leaf_index = 7")
    failed = runner.invoke(cli, ["audit", "verify"])
    assert failed.exit_code == 1 and "record_missing" in failed.output
