"""Retention: nothing leaves the database unless an intact archive holds it; the log still verifies after."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from common.db import get_db, utcnow
from gateway.audit import checkpoints, evidence, log, retention
from gateway.audit.models import AuditRecord
from gateway.audit.verify import verify_log
from tests.conftest import TEST_KEK

KEK = bytes.fromhex(TEST_KEK)
ORIGIN = "xsn.xian/gateway-audit-log"
CUTOFF = datetime(2026, 6, 1, tzinfo=UTC)  # between the two groups (tests run after it)


def record(i: int, month: int) -> dict:
    """Month 1: January 2026, long past any retention; month 12: now (the CLI measures from today)."""
    when = f"2026-01-01T00:00:{i:02d}+00:00" if month == 1 else utcnow().isoformat()
    return {"kind": "request", "time": when, "request_id": f"req-{i}",
            "method": "GET", "route": "/x", "path": "/x", "status": 200, "outcome": "ok"}


@pytest.fixture
def app(make_app):
    app = make_app("gateway")
    with get_db(app).session() as session:  # 6 records from January, 4 from December
        log.append_records(session, [record(i, 1) for i in range(6)] + [record(i, 12) for i in range(6, 10)])
        session.commit()
        checkpoints.publish(session, checkpoints.load_signer(session, KEK, ORIGIN))
    return app


def remaining(app) -> int:
    with get_db(app).session() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord))


def test_prune_refuses_to_delete_unarchived_records(app):
    with get_db(app).session() as session, pytest.raises(retention.NotArchived):
        retention.prune(session, before=CUTOFF)
    assert remaining(app) == 10


def test_archive_then_prune_then_verify(app, tmp_path):
    with get_db(app).session() as session:
        row = retention.archive(session, kek=KEK, origin=ORIGIN, directory=tmp_path, before=CUTOFF)
        assert (row.start, row.end) == (0, 6)
        assert retention.archive(session, kek=KEK, origin=ORIGIN, directory=tmp_path, before=CUTOFF) is None
        bundle = evidence.read_bundle((tmp_path / "audit-000000000000-000000000006.json").read_bytes())
        assert evidence.verify_bundle(bundle, bundle["public_key"]["pem"]).ok
        assert retention.prune(session, before=CUTOFF) == 6
        assert retention.prune(session, before=CUTOFF) == 0
    assert remaining(app) == 4
    with get_db(app).session() as session:
        log.append_records(session, [record(i, 12) for i in range(10, 13)])  # the log keeps growing
        session.commit()
        checkpoints.publish(session, checkpoints.load_signer(session, KEK, ORIGIN))
        report = verify_log(session, checkpoints.verifiers(session, KEK, ORIGIN))
    assert report.ok, report.problems


def test_prune_refuses_when_the_archive_file_changed(app, tmp_path):
    with get_db(app).session() as session:
        row = retention.archive(session, kek=KEK, origin=ORIGIN, directory=tmp_path, before=CUTOFF)
        with open(row.path, "a") as handle:
            handle.write(" ")
        with pytest.raises(retention.NotArchived, match="changed"):
            retention.prune(session, before=CUTOFF)
    assert remaining(app) == 10


def test_pruning_without_an_archive_row_shows_in_verify(app):
    from sqlalchemy import text

    with get_db(app).engine.begin() as conn:  # someone deletes old records behind the tool's back
        conn.execute(text("DELETE FROM audit_records WHERE leaf_index < 3"))
        conn.execute(text("UPDATE audit_head SET pruned_below = 3"))
    with get_db(app).session() as session:
        report = verify_log(session, checkpoints.verifiers(session, KEK, ORIGIN))
    assert "pruned_unarchived" in {p["code"] for p in report.problems}


def test_cli_refuses_a_retention_below_six_months(app, tmp_path, monkeypatch):
    monkeypatch.setenv("XSN_GATEWAY_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("XSN_KEK", TEST_KEK)
    monkeypatch.setenv("XSN_VAR_DIR", str(tmp_path / "var"))
    from gateway.cli import cli

    result = CliRunner().invoke(cli, ["audit", "prune", "--days", "30"])
    assert result.exit_code != 0 and "at least 180 days" in result.output
    result = CliRunner().invoke(cli, ["audit", "prune"])  # default 180 days: the January records are older
    assert result.exit_code != 0 and "not archived" in result.output
    assert remaining(app) == 10
    result = CliRunner().invoke(cli, ["audit", "archive", "--prune"])
    assert result.exit_code == 0, result.output
    assert "archived [0, 6)" in result.output and "pruned 6 records" in result.output
    assert remaining(app) == 4
