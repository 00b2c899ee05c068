"""The log's leaves and stored tree: canonical JSON fast path = RFC 8785, batched appends = the reference tree."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from common.crypto import merkle
from common.db import get_db
from common.merkle_log.driver import RowsInsert
from gateway.audit import log
from gateway.audit.models import AuditNode, AuditRecord
from tests.support.sql_capture import inserts_through_sqlalchemy

scalars = (st.none() | st.booleans() | st.text() | st.integers(min_value=-(2**60), max_value=2**60)
           | st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                              max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_canonical_leaf_is_rfc8785(record):
    try:
        expected = rfc8785.dumps(record)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        with pytest.raises((rfc8785.CanonicalizationError, ValueError, TypeError)):
            log.canonical_leaf(record)
        return
    assert log.canonical_leaf(record) == expected


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=1e-4, max_value=1e16, exclude_max=True) | st.floats(min_value=-1e16, max_value=-1e-4,
                                                                               exclude_min=True),
       st.text(max_size=12))
def test_plain_floats_and_strings_are_written_as_rfc8785_writes_them(number, text):
    record = {"latency_ms": number, "path": text}
    try:
        expected = rfc8785.dumps(record)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):  # a lone surrogate in the text
        with pytest.raises((rfc8785.CanonicalizationError, ValueError, TypeError)):
            log.canonical_leaf(record)
        return
    assert log.canonical_leaf(record) == expected


def test_edge_records_take_the_fast_path_and_match():
    record = {"time": "2026-12-01T10:00:00.5+00:00", "request_id": "r\u2028\x01\"\\", "status": 200,
              "latency_ms": 3.25, "bytes_in": 0, "reason": None, "subject": "张三", "kind": "request"}
    assert log._plain(record)
    assert log.canonical_leaf(record) == rfc8785.dumps(record)


def test_frontier_is_the_binary_decomposition():
    assert log.frontier(0) == []
    assert log.frontier(13) == [(3, 0), (2, 2), (0, 12)]


def test_batches_of_any_size_build_the_reference_tree(make_app):
    app = make_app("gateway")
    tree = merkle.MemoryTree()
    record = {"kind": "request", "time": "2026-12-01T10:00:00+00:00", "status": 200}
    with get_db(app).session() as session:
        for batch in (1, 2, 3, 1, 7, 16, 5, 1, 11):
            start = log.log_size(session)
            records = [{**record, "request_id": f"r{start + i}"} for i in range(batch)]
            assert log.append_records(session, records) == list(range(start, start + batch))
            for r in records:
                tree.append(log.canonical_leaf(r))
            session.commit()
        size = log.log_size(session)
        assert size == 47
        for n in (1, 2, 5, 16, 31, 47):
            assert log.root_hash(session, n) == tree.root(n)
        assert log.inclusion_proof(session, 13, 47) == tree.inclusion_proof(13, 47)
        assert log.consistency_proof(session, 20, 47) == tree.consistency_proof(20, 47)


def test_a_bad_record_writes_nothing(make_app):
    app = make_app("gateway")
    with get_db(app).session() as session:
        with pytest.raises(log.BadRecord):
            log.append_records(session, [{"kind": "request", "time": "2026-12-01T10:00:00+00:00"},
                                         {"kind": "request", "time": "no time"}])
        assert log.log_size(session) == 0  # refused before the head's advance, not only rolled back
        session.rollback()
        assert log.log_size(session) == 0


def test_batch_inserts_store_what_the_core_insert_stores(make_app):
    """The writer's rows go to the driver itself (SQLite: ``executemany`` of tuples, PostgreSQL:
    one ``INSERT`` of column arrays): each row reads back, raw, as the Core ``INSERT`` stores it
    (the time as SQLite's UTC text, say), and a duplicate index is SQLAlchemy's IntegrityError."""
    app = make_app("gateway")
    record = {"kind": "request", "time": "2026-12-01T18:00:00.123456+08:00", "request_id": "req-0001",
              "client_id": "c", "subject": "张三", "method": "GET", "route": "/x/*", "status": 201,
              "outcome": None, "latency_ms": 1.5}
    tables = ((AuditRecord.__table__, "leaf_index", log.row_values(record, 100)),
              (AuditNode.__table__, "node_index", {"level": 3, "node_index": 100, "hash": bytes(range(32))}))
    with get_db(app).session() as session:
        for table, key, row in tables:
            with inserts_through_sqlalchemy(session, table) as core_inserts:
                RowsInsert(table).execute_many(session, [row, {**row, key: 102}])
            assert core_inserts == []  # the driver's own path ran (on SQLite too), not the Core fallback
            with inserts_through_sqlalchemy(session, table) as control:
                session.connection().execute(insert(table), [{**row, key: 101}])
            assert len(control) == 1  # the capture does see a Core INSERT into this table
            stored = session.connection().exec_driver_sql(
                f"SELECT * FROM {table.name} WHERE {key} >= 100 ORDER BY {key}").mappings().all()  # noqa: S608
            assert [r[key] for r in stored] == [100, 101, 102]
            assert len({tuple(v for k, v in r.items() if k != key) for r in stored}) == 1
        with inserts_through_sqlalchemy(session, AuditNode.__table__) as core_inserts, pytest.raises(IntegrityError):
            RowsInsert(AuditNode.__table__).execute_many(session, [tables[1][2]])
        assert core_inserts == []
        session.rollback()
