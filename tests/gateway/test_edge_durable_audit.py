"""The edge with its default sink: the durable audit log (spool → writer → Merkle log)."""

from __future__ import annotations

import json
import time

import pytest
import requests
from sqlalchemy import select

from common.db import get_db
from gateway.audit.models import AuditRecord
from gateway.edge.audit_sink import DurableAuditSink, MemoryAuditSink, load_sink
from tests.conftest import TEST_KEK


@pytest.fixture
def gateway_app(make_app):
    return make_app("gateway")


def _durable_edge(start_edge, gateway_app, tmp_path):
    return start_edge(GATEWAY_AUDIT_SINK="audit", DATABASE_URL=gateway_app.config["DATABASE_URL"], KEK=TEST_KEK,
                      AUDIT_SPOOL_DIR=str(tmp_path / "spool"), AUDIT_WRITER_INTERVAL=0.01)


def _logged(app, request_id: str, wait: float = 10.0) -> AuditRecord | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with get_db(app).session() as session:
            found = session.scalars(select(AuditRecord).where(AuditRecord.request_id == request_id)).first()
            if found is not None:
                session.expunge(found)
                return found
        time.sleep(0.05)
    return None


def test_the_default_sink_is_the_durable_log():
    from gateway import SETTINGS

    assert SETTINGS["GATEWAY_AUDIT_SINK"] == "audit"
    assert isinstance(load_sink({"GATEWAY_AUDIT_SINK": "memory"}), MemoryAuditSink)


def test_a_request_through_the_edge_lands_in_the_audit_log(start_edge, gateway_app, tmp_path):
    edge = _durable_edge(start_edge, gateway_app, tmp_path)
    assert isinstance(edge.sink, DurableAuditSink)
    response = requests.get(f"{edge.url}/seal/livez", timeout=5)
    assert response.status_code == 200
    found = _logged(gateway_app, response.headers["X-Request-ID"])
    assert found is not None and found.status == 200 and found.kind == "request"
    assert json.loads(found.leaf)["path"] == "/seal/livez"
    # The worker's own spool directory, named by its stable index.
    assert (tmp_path / "spool" / "0").is_dir()
    ready = requests.get(f"{edge.url}/readyz", timeout=5).json()
    assert ready["audit"] == "ok" and ready["audit_log"]["ready"] and ready["audit_log"]["moved"] >= 1


def test_an_unwritable_spool_answers_503_and_forwards_nothing(start_edge, gateway_app, tmp_path):
    edge = _durable_edge(start_edge, gateway_app, tmp_path)
    spool = edge.sink.pipeline.spool
    spool.max_backlog_bytes = 0  # the backlog bound: as if the writer had stalled
    response = requests.get(f"{edge.url}/seal/livez", timeout=5)
    assert response.status_code == 503 and response.json()["code"] == "audit_unavailable"
    assert requests.get(f"{edge.url}/readyz", timeout=5).status_code == 503
