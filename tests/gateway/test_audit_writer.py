"""The writer moves spooled records into the Merkle log exactly once, crash or not."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from common.db import get_db
from gateway.audit import checkpoints, log
from gateway.audit.models import AuditRecord, AuditSpoolState
from gateway.audit.spool import AuditSpool, AuditUnavailable
from gateway.audit.spool.reader import SpoolReader
from gateway.audit.writer import AuditWriter, SpoolPositionLost, as_leaf, open_writer
from tests.conftest import TEST_KEK
from tests.gateway.conftest import run_async

KEK = bytes.fromhex(TEST_KEK)



def edge_record(i: int, **extra) -> dict:
    return {"time": f"2026-12-01T10:00:{i % 60:02d}+00:00", "request_id": f"req-{i}", "client_id": "xsn-licenses",
            "subject": "person-1", "acr": "urn:xsn:acr:L2", "source": "203.0.113.9", "method": "GET",
            "route": "/licenses/licenses/*", "path": f"/licenses/licenses/{i}", "status": 200, "latency_ms": 1.5,
            "bytes_in": 0, "bytes_out": 120, "outcome": "ok", "reason": None, "upstream": "licenses", **extra}


def spool_records(spool: AuditSpool, records: list[dict]) -> None:
    async def main():
        await asyncio.gather(*(spool.record(r) for r in records))

    run_async(main)


@pytest.fixture
def app(make_app):
    return make_app("gateway")


def count_records(app) -> int:
    with get_db(app).session() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord))


def test_records_reach_the_log_in_spool_order(app, tmp_path):
    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(i) for i in range(30)])
    writer = AuditWriter(SpoolReader(tmp_path / "spool"), get_db(app), batch=7, kek=KEK)
    assert writer.drain() == 30
    with get_db(app).session() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.leaf_index)).all()
        assert [r.request_id for r in rows] == [f"req-{i}" for i in range(30)]
        assert rows[3].kind == "request" and rows[3].route == "/licenses/licenses/*" and rows[3].status == 200
        assert log.log_size(session) == 30
        # The stored nodes give the same root as a tree built from the leaves directly.
        leaves = [bytes(r.leaf_hash) for r in rows]
        from common.crypto import merkle

        for size in (1, 7, 16, 30):
            assert log.root_hash(session, size) == merkle.root_from_leaf_hashes(leaves[:size])
    assert spool.backlog_bytes == 0
    writer.spool.close()
    spool.close()


def test_crash_after_commit_before_release_does_not_duplicate(app, tmp_path, monkeypatch):
    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(i) for i in range(10)])
    reader = SpoolReader(tmp_path / "spool")
    writer = AuditWriter(reader, get_db(app), batch=100)

    def crash(_position):
        raise SystemExit("killed between the database commit and the spool truncation")

    monkeypatch.setattr(reader, "release", crash)
    with pytest.raises(SystemExit):
        writer.move_once()
    monkeypatch.undo()
    reader.close()  # the writer process died
    spool.close()  # and so did the edge
    assert count_records(app) == 10

    reopened = AuditSpool(tmp_path / "spool")  # the restarted edge process
    spool_records(reopened, [edge_record(10)])
    restarted = SpoolReader(tmp_path / "spool")  # the restarted writer process
    assert AuditWriter(restarted, get_db(app)).drain() == 1
    restarted.close()
    with get_db(app).session() as session:
        ids = session.scalars(select(AuditRecord.request_id).order_by(AuditRecord.leaf_index)).all()
        state = session.get(AuditSpoolState, reopened.spool_id)
    assert ids == [f"req-{i}" for i in range(11)]
    assert state.position == reopened.durable_end
    reopened.close()


def test_crash_before_commit_moves_the_batch_again(app, tmp_path, monkeypatch):
    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(i) for i in range(5)])
    writer = AuditWriter(SpoolReader(tmp_path / "spool"), get_db(app))
    real_append = log.append_records

    def append_then_die(session, records, **kwargs):
        real_append(session, records, **kwargs)
        raise SystemExit("killed before the commit")

    monkeypatch.setattr(log, "append_records", append_then_die)
    with pytest.raises(SystemExit):
        writer.move_once()
    monkeypatch.undo()
    assert count_records(app) == 0
    assert writer.drain() == 5
    assert count_records(app) == 5
    writer.spool.close()
    spool.close()


@pytest.mark.parametrize("meanwhile", ["deleted", "moved"])
def test_a_saved_position_changed_during_a_pass_fails_it_and_appends_nothing(app, tmp_path, monkeypatch, meanwhile):
    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(i) for i in range(3)])
    reader = SpoolReader(tmp_path / "spool")
    writer = AuditWriter(reader, get_db(app))
    assert writer.drain() == 3  # the position is saved
    spool_records(spool, [edge_record(i) for i in range(3, 5)])
    real_append = log.append_records

    def change_the_row_then_append(session, records, **kwargs):
        # Between the pass's read of the position and its save (same transaction: no lock waits).
        state = AuditSpoolState.__table__
        where = state.c.spool_id == reader.spool_id
        if meanwhile == "deleted":
            session.execute(state.delete().where(where))
        else:
            session.execute(state.update().where(where).values(position=state.c.position + 1))
        real_append(session, records, **kwargs)

    monkeypatch.setattr(log, "append_records", change_the_row_then_append)
    with pytest.raises(SpoolPositionLost):
        writer.move_once()
    monkeypatch.undo()
    assert count_records(app) == 3  # the pass was rolled back: nothing appended
    with get_db(app).session() as session:
        assert session.get(AuditSpoolState, reader.spool_id) is not None  # and the row restored
    assert writer.drain() == 2
    assert count_records(app) == 5
    reader.close()
    spool.close()


def test_a_record_with_a_bad_time_is_kept_not_dropped():
    leaf, canonical = as_leaf({"time": "yesterday", "request_id": "x"})
    assert leaf["spooled_time"] == "yesterday" and log.record_time(leaf)
    assert canonical == log.canonical_leaf(leaf)  # the bytes the log stores, made once


def test_a_record_without_canonical_json_is_kept_as_a_string(app, tmp_path):
    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(0, bytes_out=2**60), edge_record(1)])
    reader = SpoolReader(tmp_path / "spool")
    assert AuditWriter(reader, get_db(app)).drain() == 2
    reader.close()
    with get_db(app).session() as session:
        first = log.get_record(session, 0)
    assert first.request_id == "req-0" and str(2**60) in first.leaf
    spool.close()


def test_a_record_with_a_lone_surrogate_is_kept_as_a_string_not_refused():
    # A lone surrogate in the request id (only a damaged or foreign spool can hold one: the
    # edge's spool refuses it): the log itself refuses the record as it is, so the writer keeps
    # it in its string form rather than retry the batch for ever.
    record = edge_record(0, request_id="req-\ud800")
    with pytest.raises(log.BadRecord):
        log.row_values({**record, "kind": "request"}, 0)
    leaf, canonical = as_leaf(record)
    assert leaf["request_id"] == "req-\\ud800" and "unencodable" in leaf
    assert canonical == log.canonical_leaf(leaf)
    log.row_values(leaf, 0)  # stored without complaint


def test_callers_hear_of_any_spool_failure(tmp_path):
    spool = AuditSpool(tmp_path / "spool")
    spool.close()  # the executor is shut down: the write cannot even be scheduled
    with pytest.raises(AuditUnavailable):
        spool_records(spool, [edge_record(0)])


def test_the_writer_publishes_checkpoints_and_reports_to_the_edge(app, tmp_path):
    config = {**app.config, "AUDIT_SPOOL_DIR": str(tmp_path / "spools"), "AUDIT_WRITER_INTERVAL": 0.01,
              "AUDIT_CHECKPOINT_INTERVAL": 0}
    spool = AuditSpool(tmp_path / "spools" / "0")  # the edge process's side
    writer = open_writer(config, worker="0", database=get_db(app)).start()
    spool_records(spool, [edge_record(i) for i in range(20)])
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with get_db(app).session() as session:
            newest = checkpoints.newest(session)
            if newest is not None and newest.tree_size == 20 and spool.backlog_bytes == 0:
                break
        time.sleep(0.05)
    report = spool.shared.writer()
    writer.stop()
    writer.spool.close()
    spool.close()
    assert report["moved"] == 20 and report["error"] is None and report["age_s"] < 5
    assert count_records(app) == 20
    assert newest is not None and newest.tree_size == 20


def test_a_writer_that_cannot_reach_the_database_says_so(app, tmp_path):
    from common.db import Database

    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(0)])
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    writer = AuditWriter(SpoolReader(tmp_path / "spool"), broken, interval=0.01).start()
    import time

    deadline = time.monotonic() + 10
    while spool.shared.writer()["error"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    report, backlog = spool.shared.writer(), spool.backlog_bytes
    writer.stop()
    writer.spool.close()
    spool.close()
    assert report["error"] and backlog > 0


def test_readyz_shows_a_failed_pass_s_error_type_not_its_message(app, tmp_path):
    from common.db import Database

    spool = AuditSpool(tmp_path / "spool")
    spool_records(spool, [edge_record(0)])
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    writer = AuditWriter(SpoolReader(tmp_path / "spool"), broken, interval=0.01).start()
    import time

    deadline = time.monotonic() + 10
    while spool.shared.writer()["error"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    report = spool.shared.writer()
    writer.stop()
    writer.spool.close()
    spool.close()
    assert report["error"] == "OperationalError"  # not "(sqlite3.OperationalError) unable to open ..."


def test_a_disk_error_is_shown_with_its_errno_and_strerror_not_its_file(tmp_path, monkeypatch):
    import errno
    import os
    import threading

    from common.db import Database

    spool = AuditSpool(tmp_path / "spool")
    writer = AuditWriter(SpoolReader(tmp_path / "spool"), Database(f"sqlite:///{tmp_path / 'log.db'}"),
                         interval=0.01)
    stop = threading.Event()

    def full_disk():
        stop.set()  # one pass
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/srv/secret/segment-0001")

    monkeypatch.setattr(writer, "move_once", full_disk)
    monkeypatch.setattr(writer, "drain", lambda: None)
    writer.run(stop)
    report = spool.shared.writer()
    writer.spool.close()
    spool.close()
    assert report["error"] == f"OSError errno={errno.ENOSPC} ({os.strerror(errno.ENOSPC)})"
