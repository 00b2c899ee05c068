"""``xsn seal log fetch``: an auditor gathers an evidence bundle over the API, with no database.

The fetched bundle must be the very bundle an operator exports from the database (same
checkpoint, entries, proofs and key), and must verify offline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from common.crypto.gm import sm3
from common.db import get_db
from common.ops.cli import main
from seal.log import appends
from seal.log.models import AuditQuery
from seal.log.service import LogSettings, publish
from tests.seal.log.events import ORIGIN, cli_env
from tests.support.suite import free_port


@pytest.fixture
def app(make_app, tokens, material):
    """A log of 5 signatures, with a checkpoint published at size 2 on the way."""
    app = make_app("seal", SEAL_LOG_ORIGIN=ORIGIN, SEAL_LOG_CHECKPOINT_INTERVAL=0)
    tokens.install(app)
    with get_db(app).session() as session:
        for i in range(5):
            appends.append_event(session, {
                "type": "sign", "time": datetime(2026, 5, 1, 8, i, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seal_id": "seal-1", "seal_code": "6101260200000001", "org_code": "91610113MA6TXX0010",
                "signer": "svc-licenses", "client_id": "xsn-licenses", "document_digest": material.digest.hex(),
                "signature_digest": sm3(material.signature_der).hex(), "request_id": f"req-{i}"},
                ses_der=material.signature_der)
            if i == 1:
                session.flush()
                publish(session, LogSettings.from_config(app.config))
        session.commit()
    return app


@pytest.fixture
def env(app, tmp_path):
    """``xsn`` with the database (for ``export``) and a fresh var dir; ``fetch`` needs neither."""
    return cli_env(app, tmp_path)


@pytest.fixture
def url(app, serve_app):
    return serve_app(app)


def run(env, *args):
    return CliRunner().invoke(main, ["seal", "log", *map(str, args)], env=env)


def auditor_token(tokens, **kwargs) -> str:
    return tokens.token(sub="auditor-1", client_id="xsn-auditor", scope=kwargs.pop("scope", "audit:read"), **kwargs)


def test_fetched_bundle_is_the_exported_bundle_and_verifies_offline(app, env, url, tokens, material, tmp_path):
    # Pin the tree at size 5 first, so that export and fetch prove against the same checkpoint.
    # A range that leaves out the first entries, so that consistency rests on the proof alone.
    exported = run(env, "export", "--out", tmp_path / "export.json", "--start", 2, "--consistency-from", 2)
    assert exported.exit_code == 0, exported.output
    (tmp_path / "token").write_text(auditor_token(tokens) + "\n")
    no_db = {"XSN_VAR_DIR": env["XSN_VAR_DIR"]}  # the auditor's machine: no database settings
    fetched = run(no_db, "fetch", "--url", url, "--token-file", tmp_path / "token", "--out", tmp_path / "fetch.json",
                  "--tree-size", 5, "--start", 2, "--consistency-from", 2, "--key-out", tmp_path / "log.pem")
    assert fetched.exit_code == 0, fetched.output
    assert "wrote 3 entries at tree size 5" in fetched.output
    assert json.loads((tmp_path / "fetch.json").read_text()) == json.loads((tmp_path / "export.json").read_text())

    # The auditor saved the size-2 checkpoint on an earlier visit; the log must extend it.
    older = requests.get(f"{url}/log/entries/0", params={"tree_size": 2},
                         headers={"Authorization": f"Bearer {auditor_token(tokens)}"}, timeout=10)
    (tmp_path / "older.txt").write_text(older.json()["checkpoint"]["note"])
    root = tmp_path / "maker.der"
    root.write_bytes(material.maker_der)
    verified = run(no_db, "verify", "--bundle", tmp_path / "fetch.json", "--key", tmp_path / "log.pem",
                   "--trusted-root", root, "--older", tmp_path / "older.txt")
    assert verified.exit_code == 0, verified.output
    assert "OK   consistency: size 5 extends the older checkpoint of size 2" in verified.output
    assert "OK   entry 4: SES signature" in verified.output and "VERIFIED" in verified.output


def test_fetch_reads_the_token_from_the_environment_and_is_recorded_as_an_auditor_query(app, env, url, tokens,
                                                                                          tmp_path):
    result = run({"XSN_AUDIT_TOKEN": auditor_token(tokens), "XSN_VAR_DIR": env["XSN_VAR_DIR"]},
                 "fetch", "--url", url, "--out", tmp_path / "b.json", "--start", 3)
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "b.json").read_text())
    assert bundle["range"] == {"start": 3, "end": 5} and [e["index"] for e in bundle["entries"]] == [3, 4]
    with get_db(app).session() as session:
        actions = session.scalars(select(AuditQuery.action).where(AuditQuery.subject == "auditor-1")).all()
    assert {"LatestCheckpoint", "EntryProof", "Keys"} <= set(actions)


def test_fetch_without_a_token_says_how_to_give_one(env, url, tmp_path):
    result = run({"XSN_VAR_DIR": env["XSN_VAR_DIR"]}, "fetch", "--url", url, "--out", tmp_path / "b.json")
    assert result.exit_code == 1 and "XSN_AUDIT_TOKEN" in result.output
    assert not (tmp_path / "b.json").exists()


def test_a_refused_token_is_reported_with_the_problem_code(env, url, tokens, tmp_path):
    result = run({"XSN_AUDIT_TOKEN": auditor_token(tokens, scope="seal:sign"), "XSN_VAR_DIR": env["XSN_VAR_DIR"]},
                 "fetch", "--url", url, "--out", tmp_path / "b.json")
    assert result.exit_code == 1 and "answered 403 (insufficient_scope)" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "b.json").exists()


def test_an_expired_token_is_refused(env, url, tokens, tmp_path):
    result = run({"XSN_AUDIT_TOKEN": auditor_token(tokens, lifetime=-60), "XSN_VAR_DIR": env["XSN_VAR_DIR"]},
                 "fetch", "--url", url, "--out", tmp_path / "b.json")
    assert result.exit_code == 1 and "answered 401" in result.output, result.output


def test_a_range_beyond_the_checkpoint_and_an_unknown_size_are_refused(env, url, tokens, tmp_path):
    environment = {"XSN_AUDIT_TOKEN": auditor_token(tokens), "XSN_VAR_DIR": env["XSN_VAR_DIR"]}
    beyond = run(environment, "fetch", "--url", url, "--out", tmp_path / "b.json", "--end", 9)
    assert beyond.exit_code == 1 and "not within the checkpoint" in beyond.output
    unknown = run(environment, "fetch", "--url", url, "--out", tmp_path / "b.json", "--tree-size", 4)
    assert unknown.exit_code == 1 and "answered 404" in unknown.output, unknown.output


def test_an_unreachable_node_is_reported(env, tokens, tmp_path):
    result = run({"XSN_AUDIT_TOKEN": auditor_token(tokens), "XSN_VAR_DIR": env["XSN_VAR_DIR"]},
                 "fetch", "--url", f"http://127.0.0.1:{free_port()}", "--out", tmp_path / "b.json")
    assert result.exit_code == 1 and "cannot reach" in result.output
