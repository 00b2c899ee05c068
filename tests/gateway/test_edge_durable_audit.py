"""The edge with its default sink: the durable audit log (the edge's spool → the writer process →
the Merkle log)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import func, select

from common.db import get_db
from gateway.audit.models import AuditRecord
from gateway.audit.spool import AuditSpool
from gateway.audit.writer import open_writer
from gateway.edge.audit_sink import DurableAuditSink, MemoryAuditSink, load_sink
from tests.conftest import TEST_KEK
from tests.gateway.conftest import run_async
from tests.support.suite import spawn, wait_for


@pytest.fixture
def gateway_app(make_app):
    return make_app("gateway")


@pytest.fixture
def writer_thread(gateway_app, tmp_path):
    """A writer on spool ``0`` in a thread of this process (the shipped one is its own process)."""
    started = []

    def start():
        config = {**gateway_app.config, "AUDIT_SPOOL_DIR": str(tmp_path / "spool"), "AUDIT_WRITER_INTERVAL": 0.01}
        writer = open_writer(config, worker="0", database=get_db(gateway_app)).start()
        started.append(writer)
        return writer

    yield start
    for writer in started:
        writer.stop()
        writer.spool.close()


def _durable_edge(start_edge, gateway_app, tmp_path):
    return start_edge(GATEWAY_AUDIT_SINK="audit", DATABASE_URL=gateway_app.config["DATABASE_URL"], KEK=TEST_KEK,
                      AUDIT_SPOOL_DIR=str(tmp_path / "spool"))


def _logged(app, request_id: str, wait: float = 10.0) -> AuditRecord:
    """:raise AssertionError: the request's record was not in the log within ``wait`` seconds."""

    def find() -> AuditRecord | None:
        with get_db(app).session() as session:
            found = session.scalars(select(AuditRecord).where(AuditRecord.request_id == request_id)).first()
            if found is not None:
                session.expunge(found)
            return found

    return wait_for(find, wait, f"the audit record of {request_id}", interval=0.05)


def _wait(condition, what: str) -> None:
    wait_for(condition, 45.0, what, interval=0.05)


def test_the_default_sink_is_the_durable_log():
    from gateway import SETTINGS

    assert SETTINGS["GATEWAY_AUDIT_SINK"] == "audit"
    assert isinstance(load_sink({"GATEWAY_AUDIT_SINK": "memory"}), MemoryAuditSink)


def test_a_request_through_the_edge_lands_in_the_audit_log(start_edge, gateway_app, tmp_path, writer_thread):
    edge = _durable_edge(start_edge, gateway_app, tmp_path)
    assert isinstance(edge.sink, DurableAuditSink)
    writer_thread()
    response = requests.get(f"{edge.url}/seal/livez", timeout=5)
    assert response.status_code == 200
    found = _logged(gateway_app, response.headers["X-Request-ID"])
    assert found.status == 200 and found.kind == "request"
    assert json.loads(found.leaf)["path"] == "/seal/livez"
    # The worker's own spool directory, named by its stable index.
    assert (tmp_path / "spool" / "0").is_dir()
    _wait(lambda: requests.get(f"{edge.url}/readyz", timeout=5).json()["audit_log"]["moved"] >= 1,
          "the writer's first move on /readyz")
    ready = requests.get(f"{edge.url}/readyz", timeout=5).json()
    assert ready["audit"] == "ok" and ready["audit_log"]["ready"] and ready["audit_log"]["writer_error"] is None


def test_without_a_writer_process_the_edge_serves_but_is_not_ready(start_edge, gateway_app, tmp_path):
    edge = _durable_edge(start_edge, gateway_app, tmp_path)
    assert requests.get(f"{edge.url}/seal/livez", timeout=5).status_code == 200  # spooled, bound not reached
    ready = requests.get(f"{edge.url}/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["audit_log"]["writer_error"] == "no writer process"
    assert ready.json()["audit_log"]["backlog_bytes"] > 0


def test_an_unwritable_spool_answers_503_and_forwards_nothing(start_edge, gateway_app, tmp_path, writer_thread):
    edge = _durable_edge(start_edge, gateway_app, tmp_path)
    writer_thread()
    spool = edge.sink.spool
    spool.max_backlog_bytes = 0  # the backlog bound: as if the writer had stalled
    response = requests.get(f"{edge.url}/seal/livez", timeout=5)
    assert response.status_code == 503 and response.json()["code"] == "audit_unavailable"
    assert requests.get(f"{edge.url}/readyz", timeout=5).status_code == 503


def _writer_process(gateway_app, spools) -> subprocess.Popen:
    env = {**os.environ, "XSN_GATEWAY_DATABASE_URL": gateway_app.config["DATABASE_URL"], "XSN_KEK": TEST_KEK,
           "XSN_AUDIT_SPOOL_DIR": str(spools), "XSN_AUDIT_WRITER_INTERVAL": "0.01",
           "XSN_VAR_DIR": str(spools.parent / "var"), "XSN_LOG_LEVEL": "WARNING"}
    return spawn([sys.executable, "-m", "gateway.audit_writer", "--workers", "2"], env=env)


def test_a_killed_writer_process_loses_nothing(gateway_app, tmp_path):
    from tests.gateway.test_audit_writer import edge_record

    spools = tmp_path / "spools"
    edges = [AuditSpool(spools / "0"), AuditSpool(spools / "1")]  # two edge processes' spools

    def spool(index: int, ids: range) -> None:
        async def main():
            await asyncio.gather(*(edges[index].record(edge_record(i)) for i in ids))

        run_async(main)

    def count() -> int:
        with get_db(gateway_app).session() as session:
            return session.scalar(select(func.count()).select_from(AuditRecord))

    writer = _writer_process(gateway_app, spools)
    try:
        spool(0, range(0, 20))
        spool(1, range(100, 110))
        # Each writer beats after committing what it moved: wait for both beats, not just the rows.
        _wait(lambda: count() == 30 and all(e.shared.writer()["age_s"] is not None for e in edges),
              "30 rows and both writers' beats")
        os.killpg(writer.pid, signal.SIGKILL)  # no chance to drain or to save anything
        writer.wait(10)
        spool(0, range(20, 40))  # the edges go on spooling while no writer runs
        spool(1, range(110, 120))
        assert edges[0].backlog_bytes > 0 and edges[0].shared.writer()["age_s"] > 0
        time.sleep(0.5)
        assert count() == 30
        writer = _writer_process(gateway_app, spools)  # resumes from each spool's saved position
        _wait(lambda: count() == 60 and edges[0].backlog_bytes == edges[1].backlog_bytes == 0,
              "60 rows and both spools drained")
        time.sleep(0.3)
        with get_db(gateway_app).session() as session:
            ids = session.scalars(select(AuditRecord.request_id).order_by(AuditRecord.leaf_index)).all()
        assert sorted(ids) == sorted(f"req-{i}" for i in [*range(40), *range(100, 120)])  # each exactly once
        spool_0 = [i for i in ids if int(i.split("-")[1]) < 100]
        assert spool_0 == [f"req-{i}" for i in range(40)]  # in spool order
        os.killpg(writer.pid, signal.SIGTERM)
        assert writer.wait(15) == 0  # a clean stop
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait(5)
        for edge in edges:
            edge.close()
