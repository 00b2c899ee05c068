"""Tampering with the stored log behind the service's back is reported by the self-check
endpoint and by the offline verifier."""

from __future__ import annotations

import base64
import json

import pytest
import rfc8785
from click.testing import CliRunner
from sqlalchemy import text

from common.crypto import merkle
from common.crypto.gm import sm3
from common.db import get_db
from common.ops.cli import main
from seal.log import appends
from tests.seal.log.events import ORIGIN, cli_env
from tests.support.suite import TokenFactory


@pytest.fixture
def app(make_app, material):
    app = make_app("seal", SEAL_LOG_ORIGIN=ORIGIN, SEAL_LOG_CHECKPOINT_INTERVAL=0)
    app.tokens = TokenFactory()
    app.tokens.install(app)
    client = app.test_client()
    app.auditor = app.tokens.bearer(sub="auditor", scope="audit:read")
    for batch in (range(0, 6), range(6, 10)):
        with get_db(app).session() as session:
            for i in batch:
                appends.append_event(session, leaf_event(material, i), ses_der=material.signature_der)
            session.commit()
        assert client.get("/log/checkpoint", headers=app.auditor).status_code == 200
    return app


def leaf_event(material, i: int) -> dict:
    return {"type": "sign", "time": f"2026-06-01T00:00:{i:02d}Z", "seal_id": "s1", "seal_code": "6101260200000001",
            "org_code": "91610113MA6TXX0010", "signer": "svc", "client_id": "xsn-licenses",
            "document_digest": material.digest.hex(), "signature_digest": sm3(material.signature_der).hex(),
            "request_id": f"r{i}"}


def sql(app, statement: str, **params) -> None:
    with get_db(app).engine.begin() as conn:
        conn.execute(text(statement), params)


def self_check(app) -> dict:
    response = app.test_client().get("/log/self-check", headers=app.auditor)
    assert response.status_code == 200
    return response.get_json()


def codes(report: dict) -> set[str]:
    return {p["code"] for p in report["problems"]}


def forged_leaf(material, i: int) -> str:
    return rfc8785.dumps(dict(leaf_event(material, i), signer="mallory")).decode()


def test_untouched_log_passes(app):
    report = self_check(app)
    assert report["ok"] and report["size"] == 10 and report["checkpoints_checked"] == 2


TAMPERING = {
    "entry leaf changed": (
        lambda app, m: sql(app, "UPDATE log_entries SET leaf = :leaf WHERE leaf_index = 3", leaf=forged_leaf(m, 3)),
        {"leaf_hash_mismatch", "index_mismatch"}),
    "entry and its hash rewritten": (
        lambda app, m: sql(app, "UPDATE log_entries SET leaf = :leaf, leaf_hash = :h, signer = 'mallory' "
                                "WHERE leaf_index = 3", leaf=forged_leaf(m, 3),
                           h=merkle.leaf_hash(forged_leaf(m, 3).encode())),
        {"node_mismatch"}),
    "entry, hash and every node rewritten": (
        lambda app, m: rewrite_history(app, m, 3),
        {"checkpoint_root_mismatch"}),
    "entry deleted": (
        lambda app, m: sql(app, "DELETE FROM log_entries WHERE leaf_index = 4"),
        {"entry_missing", "node_mismatch"}),
    "entry inserted beyond the head": (
        lambda app, m: sql(app, "INSERT INTO log_entries (leaf_index, leaf, leaf_hash, event_type, time, "
                                "appended_at) SELECT 10, leaf, leaf_hash, event_type, time, appended_at "
                                "FROM log_entries WHERE leaf_index = 9"),
        {"entry_beyond_head"}),
    "head truncated": (
        lambda app, m: sql(app, "UPDATE log_head SET size = 8"),
        {"entry_beyond_head", "checkpoint_beyond_log"}),
    "node changed": (
        lambda app, m: sql(app, "UPDATE log_nodes SET hash = :h WHERE level = 1 AND node_index = 2", h=bytes(32)),
        {"node_mismatch"}),
    "node deleted": (
        lambda app, m: sql(app, "DELETE FROM log_nodes WHERE level = 2 AND node_index = 0"),
        {"node_missing"}),
    "node inserted": (
        lambda app, m: sql(app, "INSERT INTO log_nodes (level, node_index, hash) VALUES (0, 10, :h)", h=bytes(32)),
        {"node_unexpected"}),
    "signature digest column changed": (
        lambda app, m: sql(app, "UPDATE log_entries SET signature_digest = :d WHERE leaf_index = 5", d="00" * 32),
        {"index_mismatch"}),
    "stored signature replaced": (
        lambda app, m: sql(app, "UPDATE log_entries SET ses_signature = :s WHERE leaf_index = 5",
                           s=base64.b64encode(b"\x30\x00").decode()),
        {"signature_digest_mismatch"}),
    "checkpoint note altered": (
        lambda app, m: sql(app, "UPDATE log_checkpoints SET note = replace(note, '\n6\n', '\n5\n') "
                                "WHERE tree_size = 6"),
        {"checkpoint_signature_invalid"}),
    "checkpoint row root altered": (
        lambda app, m: sql(app, "UPDATE log_checkpoints SET root_hash = :h WHERE tree_size = 6", h=bytes(32)),
        {"checkpoint_row_mismatch"}),
}


def rewrite_history(app, material, index: int) -> None:
    """A consistent rewrite of entry ``index``: leaf, leaf hash and every node, recomputed."""
    sql(app, "UPDATE log_entries SET leaf = :leaf, leaf_hash = :h, signer = 'mallory' WHERE leaf_index = :i",
        leaf=forged_leaf(material, index), h=merkle.leaf_hash(forged_leaf(material, index).encode()), i=index)
    tree = merkle.MemoryTree()
    with get_db(app).engine.connect() as conn:
        for (leaf,) in conn.execute(text("SELECT leaf FROM log_entries ORDER BY leaf_index")):
            tree.append(leaf.encode())
    for (level, node), h in tree._nodes.items():
        sql(app, "UPDATE log_nodes SET hash = :h WHERE level = :l AND node_index = :n", h=h, l=level, n=node)


@pytest.mark.parametrize("name", TAMPERING)
def test_self_check_reports_each_kind_of_tampering(app, material, name):
    tamper, expected = TAMPERING[name]
    tamper(app, material)
    report = self_check(app)
    assert report["ok"] is False
    assert expected <= codes(report), report["problems"]


@pytest.mark.parametrize("name", ["entry and its hash rewritten", "entry, hash and every node rewritten",
                                  "entry deleted", "node changed", "stored signature replaced"])
def test_the_offline_verifier_reports_tampering(app, material, tmp_path, name):
    """An export taken after the tampering no longer verifies against the signed checkpoint."""
    env = cli_env(app, tmp_path)
    runner = CliRunner()
    TAMPERING[name][0](app, material)
    export = runner.invoke(main, ["seal", "log", "export", "--tree-size", "10", "--out", str(tmp_path / "b.json"),
                                  "--key-out", str(tmp_path / "k.pem")], env=env)
    assert export.exit_code == 0, export.output
    result = runner.invoke(main, ["seal", "log", "verify", "--bundle", str(tmp_path / "b.json"),
                                  "--key", str(tmp_path / "k.pem")], env=env)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    if name == "entry deleted":
        assert "FAIL range: entries [0, 10): missing [4]" in result.output
    bundle = json.loads((tmp_path / "b.json").read_text())
    assert bundle["tree_size"] == 10


def test_a_signature_stored_once_is_checked_where_it_is_stored(make_app, tmp_path):
    """Signing stores a DER once, in its ``signatures`` row; the entry reads it from there (the
    API, the export) and the self-check and the offline verifier check that copy."""
    from tests.seal.conftest import make_granted_seal

    app = make_app("seal", SEAL_LOG_ORIGIN=ORIGIN, SEAL_LOG_CHECKPOINT_INTERVAL=0)
    app.tokens = TokenFactory()
    app.tokens.install(app)
    app.auditor = app.tokens.bearer(sub="auditor", scope="audit:read")
    client = app.test_client()
    seal_id = make_granted_seal(client, app.tokens.bearer(sub="admin-1", scope="seal:admin", client_id="x"))
    signer = app.tokens.bearer(sub="svc", scope="seal:sign", client_id="xsn-licenses")
    signed = [client.post(f"/seals/{seal_id}/sign", json={"digest": sm3(bytes([n])).hex()}, headers=signer)
              for n in range(3)]
    assert [answer.status_code for answer in signed] == [201] * 3
    with get_db(app).engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM log_entries WHERE ses_signature IS NOT NULL")).scalar() == 0
    entry = client.get("/log/entries/1", headers=app.auditor).get_json()["entry"]
    assert entry["ses_signature"] == signed[1].get_json()["signature_base64"]
    assert self_check(app)["ok"]

    sql(app, "UPDATE signatures SET signature_der = :der WHERE log_index = 1",
        der=base64.b64decode(signed[0].get_json()["signature_base64"]))
    assert "signature_digest_mismatch" in codes(self_check(app))
    env = cli_env(app, tmp_path)
    runner = CliRunner()
    export = runner.invoke(main, ["seal", "log", "export", "--out", str(tmp_path / "b.json"),
                                  "--key-out", str(tmp_path / "k.pem")], env=env)
    assert export.exit_code == 0, export.output
    result = runner.invoke(main, ["seal", "log", "verify", "--bundle", str(tmp_path / "b.json"),
                                  "--key", str(tmp_path / "k.pem")], env=env)
    assert result.exit_code == 1 and "FAIL" in result.output, result.output

    # A signature row removed behind the log: its sign entry has no signature left to check.
    sql(app, "DELETE FROM signatures WHERE log_index = 2")
    report = self_check(app)
    assert [p for p in report["problems"] if p["code"] == "signature_missing"] == [
        {"code": "signature_missing", "detail": "the signature this sign entry logs is not stored", "index": 2}]
