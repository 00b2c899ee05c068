"""``xsn seal log export / checkpoint / verify``: offline verification with a pinned key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from common.crypto.gm import SM2PrivateKey, sm3
from common.crypto.signed_note import Checkpoint, sign_note
from common.db import get_db
from common.ops.cli import main
from seal import ca
from seal.log import appends
from seal.log.service import LogSettings, signer_factory
from seal.log.verify_offline import BundleError, verify_bundle
from tests.seal.log.events import ORIGIN, cli_env


@pytest.fixture
def app(make_app, tokens):
    app = make_app("seal", SEAL_LOG_ORIGIN=ORIGIN, SEAL_LOG_CHECKPOINT_INTERVAL=0)
    tokens.install(app)  # the seal fixtures of conftest (seal_id, signer_headers) sign through the API
    return app


@pytest.fixture
def env(app, tmp_path):
    """The environment under which ``xsn`` reaches the same database and key store as ``app``."""
    return cli_env(app, tmp_path)


def signed_event(material, i: int, **overrides) -> dict:
    ev = {"type": "sign", "time": datetime(2026, 5, 1, 8, i, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "seal_id": "seal-1", "seal_code": "6101260200000001", "org_code": "91610113MA6TXX0010",
          "signer": "svc-licenses", "client_id": "xsn-licenses", "document_digest": material.digest.hex(),
          "signature_digest": sm3(material.signature_der).hex(), "request_id": f"req-{i}"}
    ev.update(overrides)
    return ev


def append(app, material, start: int, n: int, **overrides) -> None:
    with get_db(app).session() as session:
        for i in range(start, start + n):
            appends.append_event(session, signed_event(material, i, **overrides), ses_der=material.signature_der)
        session.commit()


def run(env, *args):
    result = CliRunner().invoke(main, ["seal", "log", *map(str, args)], env=env)
    return result


@pytest.fixture
def exported(app, env, material, tmp_path):
    """Five logged signatures exported in full, with the log key written to a PEM file."""
    append(app, material, 0, 5)
    result = run(env, "export", "--out", tmp_path / "bundle.json", "--key-out", tmp_path / "log.pem")
    assert result.exit_code == 0, result.output
    return tmp_path / "bundle.json", tmp_path / "log.pem"


def test_an_exported_range_verifies_offline(exported, env, material, tmp_path):
    bundle, key = exported
    root = tmp_path / "maker.der"
    root.write_bytes(material.maker_der)
    result = run(env, "verify", "--bundle", bundle, "--key", key, "--trusted-root", root)
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output
    for i in range(5):
        assert f"OK   entry {i}: inclusion" in result.output
        assert f"OK   entry {i}: SES signature" in result.output
    assert "OK   full range" in result.output


def test_a_pinned_key_that_did_not_sign_is_refused(exported, env, tmp_path):
    bundle, _key = exported
    other = tmp_path / "other.pem"
    other.write_bytes(SM2PrivateKey.generate().public_key().to_pem())
    result = run(env, "verify", "--bundle", bundle, "--key", other)
    assert result.exit_code == 1
    assert "FAIL checkpoint signature: rejected" in result.output


@pytest.mark.parametrize("tamper, message", [
    (lambda b: b["entries"][2].update(leaf=b["entries"][2]["leaf"].replace("req-2", "req-X")),
     "FAIL entry 2: leaf hash"),
    (lambda b: (b["entries"][2].update(leaf=b["entries"][2]["leaf"].replace("req-2", "req-X")),
                b["entries"][2].pop("leaf_hash")), "FAIL entry 2: inclusion"),
    (lambda b: b["entries"][1].update(inclusion_proof=b["entries"][1]["inclusion_proof"][:-1]),
     "FAIL entry 1: inclusion"),
    (lambda b: b["entries"][1].update(inclusion_proof=b["entries"][1]["inclusion_proof"] + ["00" * 32]),
     "FAIL entry 1: inclusion"),
    (lambda b: b["entries"][3].update(index=4), "FAIL entry 4: inclusion"),
    (lambda b: b["entries"][0].update(ses_signature=base64.b64encode(b"\x30\x00").decode()),
     "FAIL entry 0: signature digest"),
    (lambda b: b.update(checkpoint=b["checkpoint"].replace("\n5\n", "\n6\n")), "FAIL checkpoint signature"),
    (lambda b: b["entries"].pop(2), "FAIL range: entries [0, 5): missing [2]"),
    (lambda b: b["entries"].append(b["entries"][0]), "duplicated indexes"),
])
def test_tampered_evidence_fails_with_a_clear_message(exported, env, tamper, message):
    bundle_path, key = exported
    bundle = json.loads(bundle_path.read_text())
    tamper(bundle)
    bundle_path.write_text(json.dumps(bundle))
    result = run(env, "verify", "--bundle", bundle_path, "--key", key, "--no-signatures")
    if "signature digest" in message:
        result = run(env, "verify", "--bundle", bundle_path, "--key", key)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "VERIFICATION FAILED" in result.output


def test_a_signature_over_another_document_fails_its_ses_check(app, env, material, tmp_path):
    append(app, material, 0, 1, document_digest=sm3(b"another document").hex())
    assert run(env, "export", "--out", tmp_path / "b.json", "--key-out", tmp_path / "k.pem").exit_code == 0
    result = run(env, "verify", "--bundle", tmp_path / "b.json", "--key", tmp_path / "k.pem")
    assert result.exit_code == 1
    assert "FAIL entry 0: SES signature: fails:" in result.output


def test_consistency_with_an_older_saved_checkpoint(app, env, material, tmp_path):
    append(app, material, 0, 3)
    saved = run(env, "checkpoint")
    assert saved.exit_code == 0 and saved.output.split("\n")[1] == "3"
    (tmp_path / "old.txt").write_text(saved.output)
    append(app, material, 3, 4)
    args = ["export", "--start", 3, "--out", tmp_path / "b.json", "--key-out", tmp_path / "k.pem"]
    assert run(env, *args, "--consistency-from", 3).exit_code == 0
    result = run(env, "verify", "--bundle", tmp_path / "b.json", "--key", tmp_path / "k.pem",
                 "--older", tmp_path / "old.txt", "--no-signatures")
    assert result.exit_code == 0, result.output
    assert "OK   consistency: size 7 extends the older checkpoint of size 3" in result.output

    # Without the proof in the bundle the verifier says what is missing.
    assert run(env, *args).exit_code == 0
    result = run(env, "verify", "--bundle", tmp_path / "b.json", "--key", tmp_path / "k.pem",
                 "--older", tmp_path / "old.txt", "--no-signatures")
    assert result.exit_code == 1
    assert "no consistency proof from size 3 to 7 (export with --consistency-from 3)" in result.output


def test_a_forked_older_checkpoint_is_detected(app, env, material, tmp_path):
    """A log that showed someone a different tree of size 3, signed with its real key."""
    append(app, material, 0, 7)
    assert run(env, "export", "--out", tmp_path / "b.json", "--key-out", tmp_path / "k.pem",
               "--consistency-from", 3).exit_code == 0
    with app.app_context(), get_db(app).session() as session:
        key = signer_factory(session, LogSettings.from_config(app.config))()
        forged = sign_note(Checkpoint(ORIGIN, 3, sm3(b"fork")).body(), ORIGIN, key.private_key, key.public_der)
    (tmp_path / "forged.txt").write_text(forged)
    result = run(env, "verify", "--bundle", tmp_path / "b.json", "--key", tmp_path / "k.pem",
                 "--older", tmp_path / "forged.txt", "--no-signatures")
    assert result.exit_code == 1
    assert "OK   older checkpoint signature" in result.output
    assert "FAIL consistency" in result.output


def test_a_saved_api_entry_response_verifies_against_a_saved_checkpoint(app, env, material, tmp_path):
    from tests.support.suite import TokenFactory

    append(app, material, 0, 4)
    tokens = TokenFactory()
    tokens.install(app)
    client = app.test_client()
    headers = tokens.bearer(scope="audit:read")
    response = client.get("/log/entries/2", headers=headers).get_json()
    (tmp_path / "entry.json").write_text(json.dumps(response))
    (tmp_path / "checkpoint.txt").write_text(response["checkpoint"]["note"])
    pem = client.get("/log/keys", headers=headers).get_json()["keys"][0]["public_key_pem"]
    (tmp_path / "log.pem").write_text(pem)
    result = run(env, "verify", "--bundle", tmp_path / "entry.json", "--checkpoint", tmp_path / "checkpoint.txt",
                 "--key", tmp_path / "log.pem", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and [s["name"] for s in report["steps"]] == [
        "checkpoint signature", "entry 2: leaf", "entry 2: inclusion", "entry 2: signature digest",
        "entry 2: SES signature"]
    # A checkpoint of another size does not match the proof.
    append(app, material, 4, 1)
    newer = client.get("/log/checkpoint", headers=headers).get_json()["note"]
    (tmp_path / "checkpoint.txt").write_text(newer)
    result = run(env, "verify", "--bundle", tmp_path / "entry.json", "--checkpoint", tmp_path / "checkpoint.txt",
                 "--key", tmp_path / "log.pem", "--no-signatures")
    assert result.exit_code == 1 and "FAIL entry 2: inclusion" in result.output


@pytest.mark.parametrize("content, message", [
    ("not json", "the bundle is not JSON"),
    ('{"format": "something-else"}', "not a signature-log bundle"),
    ('{"format": "xsn-seal-log-bundle/1", "checkpoint": "x", "entries": [{"index": "1"}]}', "integer index"),
])
def test_unreadable_input_exits_2(env, tmp_path, content, message):
    (tmp_path / "b.json").write_text(content)
    (tmp_path / "k.pem").write_bytes(SM2PrivateKey.generate().public_key().to_pem())
    result = run(env, "verify", "--bundle", tmp_path / "b.json", "--key", tmp_path / "k.pem")
    assert result.exit_code == 2
    assert message in result.output


def test_a_bad_key_file_exits_2(exported, env, tmp_path):
    bundle, _key = exported
    (tmp_path / "bad.pem").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    result = run(env, "verify", "--bundle", bundle, "--key", tmp_path / "bad.pem")
    assert result.exit_code == 2 and "pinned log key" in result.output


def test_export_refuses_a_range_beyond_the_checkpoint(app, env, material, tmp_path):
    append(app, material, 0, 2)
    result = run(env, "export", "--out", tmp_path / "b.json", "--end", 9)
    assert result.exit_code == 1 and "not within the checkpoint" in result.output


def test_verify_bundle_needs_no_database_or_network(exported, monkeypatch):
    bundle_path, key = exported
    import socket

    monkeypatch.setattr(socket, "socket", lambda *a, **k: pytest.fail("network used"))
    report = verify_bundle(json.loads(bundle_path.read_text()), key.read_bytes(), check_signatures=False)
    assert report.ok
    with pytest.raises(BundleError):
        verify_bundle([], key.read_bytes())


def test_signatures_made_through_the_api_are_logged_and_verify_offline(app, client, seal_id, signer_headers,
                                                                        tokens, env, tmp_path):
    """The issue's "done when": sign, fetch the entry with proof as an auditor, verify offline."""
    signed = []
    for n in range(3):
        response = client.post(f"/seals/{seal_id}/sign", json={"digest": sm3(b"contract %d" % n).hex()},
                               headers=signer_headers)
        assert response.status_code == 201, response.get_json()
        signed.append(response.get_json())
    assert [s["log_index"] for s in signed] == [0, 1, 2]
    auditor = tokens.bearer(sub="auditor", scope="audit:read")
    entry = client.get("/log/entries/1", headers=auditor).get_json()
    assert entry["entry"]["event"]["signature_digest"] == signed[1]["signature_digest"]
    assert entry["entry"]["event"]["seal_id"] == seal_id
    assert entry["entry"]["ses_signature"] == signed[1]["signature_base64"]
    (tmp_path / "entry.json").write_text(json.dumps(entry))
    (tmp_path / "log.pem").write_text(client.get("/log/keys", headers=auditor).get_json()["keys"][0]["public_key_pem"])
    (tmp_path / "maker.der").write_bytes(client.get("/ca/certificate").data)
    result = run(env, "verify", "--bundle", tmp_path / "entry.json", "--key", tmp_path / "log.pem",
                 "--trusted-root", tmp_path / "maker.der")
    assert result.exit_code == 0, result.output
    assert "OK   entry 1: SES signature: all GB/T 38540 checks pass" in result.output
    # A root that did not make the seal is caught by the SES check.
    (tmp_path / "other.der").write_bytes(ca.make_root(
        SM2PrivateKey.generate(), common_name="other", not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2040, 1, 1, tzinfo=UTC)))
    result = run(env, "verify", "--bundle", tmp_path / "entry.json", "--key", tmp_path / "log.pem",
                 "--trusted-root", tmp_path / "other.der")
    assert result.exit_code == 1 and "FAIL entry 1: SES signature" in result.output


def test_a_leaf_that_is_canonical_json_but_not_an_event_fails_its_step_without_a_crash():
    # "[]" is canonical JSON; it was accepted as a leaf, and checking its SES signature then
    # read it as an object (AttributeError: a traceback instead of a report).
    from common.crypto import merkle

    key = SM2PrivateKey.generate()
    leaf = "[]"
    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(leaf.encode(), hash_fn=merkle.sm3)], hash_fn=merkle.sm3)
    note = sign_note(Checkpoint(ORIGIN, 1, root).body(), ORIGIN, key, key.public_key().to_der())
    bundle = {"format": "xsn-seal-log-bundle/1", "checkpoint": note, "consistency": [],
              "entries": [{"index": 0, "leaf": leaf, "inclusion_proof": [],
                           "ses_signature": base64.b64encode(b"not an SES signature").decode()}]}
    report = verify_bundle(bundle, key.public_key().to_pem())
    assert not report.ok
    assert [(s.name, s.ok, s.code) for s in report.steps][1:] == [("entry 0: leaf", False, "not_canonical")]
