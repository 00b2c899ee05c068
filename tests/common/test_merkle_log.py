"""The shared stored Merkle log (common.merkle_log): appends, roots and proofs against the
in-memory reference tree, checkpoint publishing, and the node/checkpoint tamper checks."""

from __future__ import annotations

import pytest
from sqlalchemy import Table, create_engine, insert, text
from sqlalchemy.orm import Session

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey
from common.db import make_base
from common.merkle_log.checkpoints import CheckpointBook, LogSigner
from common.merkle_log.driver import RowsInsert, pipelined
from common.merkle_log.self_check import CheckReport, check_checkpoints, compare_nodes
from common.merkle_log.store import HASH, MerkleNodeStore, StoreProblems
from common.merkle_log.tables import HEAD_ID, CheckpointMixin, LogHeadMixin, MerkleNodeMixin
from tests.support.sql_capture import inserts_through_sqlalchemy

Base = make_base()


class Head(LogHeadMixin, Base):
    __tablename__ = "t_head"


class Node(MerkleNodeMixin, Base):
    __tablename__ = "t_nodes"


class Point(CheckpointMixin, Base):
    __tablename__ = "t_checkpoints"


class Refused(Exception):
    pass


class NodeMissing(Exception):
    pass


class HeadMissing(Exception):
    pass


STORE = MerkleNodeStore(Head.__table__, "t_nodes", StoreProblems(
    bad_range=Refused, head_missing=HeadMissing, node_missing=lambda key: NodeMissing(key),
    consistency_hint=" (hint)"))
BOOK = CheckpointBook(Point, STORE, Refused)
_INSERT_NODES = RowsInsert(Node.__table__)
ORIGIN = "xsn.test/merkle-log"


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(Head.__table__).values(id=HEAD_ID, size=0))
        session.commit()
        yield session


def leaf(i: int) -> bytes:
    return merkle.leaf_hash(f"leaf {i}".encode(), hash_fn=HASH)


def append(session: Session, count: int) -> None:
    first = STORE.advance_head(session, count)
    rows = STORE.new_nodes(session, first, [leaf(first + i) for i in range(count)])
    session.execute(insert(Node.__table__), rows)
    session.commit()


def reference(size: int) -> merkle.MemoryTree:
    tree = merkle.MemoryTree(hash_fn=HASH)
    for i in range(size):
        tree.append_leaf_hash(leaf(i))
    return tree


@pytest.fixture
def signer():
    return LogSigner(origin=ORIGIN, key_id="k1", private_key=SM2PrivateKey.generate())


def verifiers_of(signer: LogSigner):
    return {signer.key_id: (signer.private_key.public_key(), ORIGIN)}


def test_batched_appends_store_the_reference_tree(session):
    for batch in (1, 2, 5, 1, 8, 3, 13):  # 33 leaves, batches crossing subtree boundaries
        append(session, batch)
    tree = reference(33)
    assert STORE.log_size(session) == 33
    stored = {(lv, ix): bytes(h) for lv, ix, h in session.execute(text("SELECT level, node_index, hash FROM t_nodes"))}
    assert stored == {key: tree.get_node(*key) for key in tree._nodes}  # noqa: SLF001 - the reference layout
    for size in (1, 2, 7, 16, 33):
        assert STORE.root_hash(session, size) == tree.root(size)
    assert STORE.root_hash(session, 0) == tree.root(0)
    assert STORE.inclusion_proof(session, 13, 33) == tree.inclusion_proof(13, 33)
    assert STORE.consistency_proof(session, 5, 33) == tree.consistency_proof(5, 33)


def test_bad_sizes_and_missing_rows_raise_the_services_problems(session):
    append(session, 4)
    with pytest.raises(Refused, match="tree size 5 is outside the log"):
        STORE.root_hash(session, 5)
    with pytest.raises(Refused, match="leaf index 4 is outside a tree of size 4"):
        STORE.inclusion_proof(session, 4, 4)
    with pytest.raises(Refused, match=r"no consistency proof from size 3 to size 2 \(hint\)"):
        STORE.consistency_proof(session, 3, 2)
    session.execute(text("DELETE FROM t_nodes WHERE level = 1 AND node_index = 0"))
    with pytest.raises(NodeMissing):
        STORE.inclusion_proof(session, 2, 4)
    session.execute(text("DELETE FROM t_head"))
    with pytest.raises(HeadMissing):
        STORE.advance_head(session, 1)
    with pytest.raises(HeadMissing):
        STORE.lock_head(session)


def test_checkpoints_are_published_once_per_size_and_on_demand(session, signer):
    append(session, 3)
    first = BOOK.publish(session, signer)
    assert (first.tree_size, bytes(first.root_hash)) == (3, reference(3).root())
    assert BOOK.publish(session, signer).id == first.id  # the log did not grow
    append(session, 2)
    calls = []

    def get_signer():
        calls.append(1)
        return signer

    assert BOOK.latest(session, get_signer, max_age=3600).tree_size == 3  # fresh enough: no signing
    assert calls == []
    assert BOOK.latest(session, get_signer, max_age=3600, covering=4).tree_size == 5
    assert BOOK.for_size(session, 3).id == first.id
    with pytest.raises(Refused, match="no checkpoint was published at tree size 4"):
        BOOK.for_size(session, 4)
    rows, total = BOOK.page(session, page=1, per_page=1)
    assert ([r.tree_size for r in rows], total) == ([5], 2)


def test_self_check_passes_an_intact_log_and_finds_tampering(session, signer):
    append(session, 6)
    BOOK.publish(session, signer)
    append(session, 3)
    BOOK.publish(session, signer)
    tree = reference(9)
    report = CheckReport(size=9)
    compare_nodes(session, report, Node, tree)
    newest = check_checkpoints(session, report, Point, tree, verifiers_of(signer))
    assert report.ok, report.problems
    assert (report.nodes_checked, report.checkpoints_checked, newest.size) == (len(tree._nodes), 2, 9)  # noqa: SLF001

    session.execute(text("UPDATE t_nodes SET hash = :h WHERE level = 0 AND node_index = 4"), {"h": bytes(32)})
    session.execute(text("DELETE FROM t_nodes WHERE level = 1 AND node_index = 0"))
    session.execute(insert(Node.__table__).values(level=5, node_index=0, hash=bytes(32)))
    session.execute(text("UPDATE t_checkpoints SET key_id = 'gone' WHERE tree_size = 6"))
    report = CheckReport(size=9)
    compare_nodes(session, report, Node, tree)
    check_checkpoints(session, report, Point, reference(8), verifiers_of(signer))  # a leaf was removed
    codes = sorted(p["code"] for p in report.problems)
    assert codes == ["checkpoint_beyond_log", "checkpoint_key_unknown", "node_mismatch", "node_missing",
                     "node_unexpected"]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_session(request):
    """A session on SQLite, or on a fresh PostgreSQL database of the suite's (``databases``,
    dropped with the others at the end; ``append_nodes`` takes its driver path there: the
    advance and the node read in one round trip). The test's tables sit beside the seal
    schema there, under names of their own."""
    if request.param == "sqlite":
        engine = create_engine("sqlite://")
    else:
        request.getfixturevalue("postgres_url")  # skips without PostgreSQL
        engine = create_engine(request.getfixturevalue("databases").fresh("seal"))
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.execute(insert(Head.__table__).values(id=HEAD_ID, size=0))
            session.commit()
            yield session
    finally:
        engine.dispose()


def test_append_nodes_with_a_pipelined_commit_stores_the_reference_tree(any_session):
    session = any_session
    size = 0
    for batch in (1, 1, 2, 5, 1, 8, 3, 13, 1, 1, 1, 27):  # 64 leaves, batches crossing subtree boundaries
        with pipelined(session, commit=True):
            first, rows = STORE.append_nodes(session, [leaf(size + i) for i in range(batch)])
            _INSERT_NODES.execute_many(session, rows)
        session.commit()  # nothing left to commit on PostgreSQL
        assert first == size
        size += batch
    tree = reference(size)
    stored = {(lv, ix): bytes(h) for lv, ix, h in session.execute(text("SELECT level, node_index, hash FROM t_nodes"))}
    assert stored == {key: tree.get_node(*key) for key in tree._nodes}  # noqa: SLF001 - the reference layout
    assert STORE.root_hash(session, size) == tree.root(size)
    session.commit()
    session.execute(text("DELETE FROM t_nodes WHERE level = 6 AND node_index = 0"))
    with pytest.raises(NodeMissing):  # leaf 127 would hash with the subtree of leaves 0-63
        STORE.append_nodes(session, [leaf(size + i) for i in range(64)])
    session.rollback()
    assert STORE.log_size(session) == size


def test_rows_insert_keeps_every_value_nulls_and_large_bytes_included(any_session):
    """``RowsInsert``: one ``INSERT ... unnest`` of arrays on PostgreSQL (the ``bytea[]`` and
    ``text[]`` built by hand, or psycopg's own for a column holding a ``memoryview`` or
    ``bytearray``), ``sqlite3``'s own ``executemany`` on SQLite; the rows read back as given
    either way."""
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table


    table = Table("t_rows", MetaData(), Column("n", Integer, primary_key=True), Column("name", String(8)),
                  Column("blob", LargeBinary), Column("other", LargeBinary))
    session = any_session
    table.create(session.connection())
    rows = [{"n": n, "name": None if n % 2 else f"r{n}\u00e9", "blob": bytes([n]) * (23_000 if n == 1 else n),
             "other": None if n == 2 else b""} for n in range(4)]
    insert_rows = RowsInsert(table)
    assert insert_rows.hand_built == [(1, "VARCHAR"), (2, "BYTEA"), (3, "BYTEA")]
    # Bytes of another type than ``bytes`` in a column: that column goes as a list psycopg dumps,
    # beside the hand-built arrays of the others, in the same statement.
    mixed = [{"n": 4, "name": "m", "blob": memoryview(b"view"), "other": b"plain"},
             {"n": 5, "name": "b", "blob": b"bytes", "other": bytearray(b"array")}]
    with inserts_through_sqlalchemy(session, table) as core_inserts:
        insert_rows.execute_many(session, rows)
        insert_rows.execute_many(session, mixed)
        insert_rows.execute_many(session, [])
    assert core_inserts == []  # the driver's own path ran, not the Core fallback
    rows += mixed
    session.commit()
    stored = [dict(row._mapping) for row in session.execute(table.select().order_by(table.c.n))]
    assert [{**row, "blob": bytes(row["blob"]), "other": row["other"] if row["other"] is None else bytes(row["other"])}
            for row in stored] == rows


def test_rows_insert_of_one_column_and_a_duplicate_raise_as_sqlalchemy_does(any_session):
    """A table of one column (its row's values still a tuple of one on SQLite), and a duplicate
    key: ``IntegrityError`` on either database, as the Core ``INSERT`` raises it."""
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.exc import IntegrityError

    table = Table("t_one", MetaData(), Column("n", Integer, primary_key=True))
    session = any_session
    table.create(session.connection())
    with inserts_through_sqlalchemy(session, table) as core_inserts:
        RowsInsert(table).execute_many(session, [{"n": 1}, {"n": 2}])
        assert session.execute(table.select().order_by(table.c.n)).scalars().all() == [1, 2]
        with pytest.raises(IntegrityError):
            RowsInsert(table).execute_many(session, [{"n": 3}, {"n": 2}])
    assert core_inserts == []  # raised by the driver's own path, mapped as SQLAlchemy maps it
    session.rollback()


def test_rows_insert_leaves_text_to_psycopg_on_a_client_encoding_other_than_utf8(databases, postgres_url):
    """The hand-built text arrays are UTF-8, which PostgreSQL would read in the connection's
    client_encoding: on LATIN1 the text columns go as lists psycopg encodes in LATIN1, and a
    non-ASCII name reads back as it was given (not as its UTF-8 bytes taken for LATIN1)."""
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

    from common.merkle_log.driver import RowsInsert

    table = Table("t_latin1", MetaData(), Column("n", Integer, primary_key=True), Column("name", String(8)),
                  Column("blob", LargeBinary))
    engine = create_engine(databases.fresh("seal"))
    try:
        with Session(engine) as session:
            table.create(session.connection())
            session.execute(text("SET client_encoding TO 'LATIN1'"))
            rows = [{"n": 1, "name": "caf\u00e9", "blob": b"\xff" * 3}, {"n": 2, "name": None, "blob": b""}]
            RowsInsert(table).execute_many(session, rows)
            session.commit()
            session.execute(text("SET client_encoding TO 'UTF8'"))
            stored = session.execute(text("SELECT n, name, blob FROM t_latin1 ORDER BY n")).all()
            assert [(n, name, bytes(blob)) for n, name, blob in stored] == [(1, "caf\u00e9", b"\xff" * 3),
                                                                         (2, None, b"")]
            session.commit()
    finally:
        engine.dispose()


class _OtherSQLiteConnection:
    """A ``sqlite3`` connection whose ``executemany`` raises the errors of another DB-API module
    (as pysqlite3 or sqlean, SQLite drivers of SQLAlchemy's ``pysqlite`` dialect, raise their own)."""

    def __init__(self, connection, module) -> None:
        object.__setattr__(self, "_connection", connection)
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def __setattr__(self, name, value) -> None:
        setattr(self._connection, name, value)

    def executemany(self, sql, params):
        import sqlite3

        try:
            return self._connection.executemany(sql, params)
        except sqlite3.IntegrityError as error:
            raise self._module.IntegrityError(*error.args) from None


def test_rows_insert_maps_the_errors_of_the_engines_own_sqlite_module():
    """An engine built with ``module=`` another SQLite driver: its errors (not the standard
    library's ``sqlite3.Error``) are raised as SQLAlchemy raises them, ``IntegrityError`` here."""
    import sqlite3
    import types

    from sqlalchemy import Column, Integer, MetaData
    from sqlalchemy.exc import IntegrityError

    module = types.ModuleType("other_sqlite")
    module.__dict__.update({name: value for name, value in vars(sqlite3).items() if not name.startswith("__")})
    module.Error = type("Error", (Exception,), {})
    module.DatabaseError = type("DatabaseError", (module.Error,), {})
    module.IntegrityError = type("IntegrityError", (module.DatabaseError,), {})
    module.connect = lambda *args, **kwargs: _OtherSQLiteConnection(sqlite3.connect(*args, **kwargs), module)
    table = Table("t_other", MetaData(), Column("n", Integer, primary_key=True))
    engine = create_engine("sqlite://", module=module)
    try:
        with Session(engine) as session:
            assert session.connection().dialect.driver == "pysqlite"
            table.create(session.connection())
            with pytest.raises(IntegrityError) as raised:
                RowsInsert(table).execute_many(session, [{"n": 1}, {"n": 1}])
            assert isinstance(raised.value.orig, module.IntegrityError)
            session.rollback()
    finally:
        engine.dispose()


def test_rows_insert_raises_a_bind_processors_error_as_sqlalchemy_does():
    """A column type refusing a value on SQLite: ``StatementError`` with the type's error as its
    ``orig``, as the Core ``INSERT`` raises it, not the type's bare error."""
    from sqlalchemy import Column, Integer, MetaData, TypeDecorator
    from sqlalchemy.exc import StatementError

    class Even(TypeDecorator):
        impl = Integer
        cache_ok = True

        def process_bind_param(self, value, dialect):
            if value % 2:
                raise ValueError(f"{value} is odd")
            return value

    table = Table("t_even", MetaData(), Column("n", Even, primary_key=True))
    engine = create_engine("sqlite://")
    try:
        with Session(engine) as session:
            table.create(session.connection())
            for run in (lambda rows: session.connection().execute(insert(table), rows),
                        lambda rows: RowsInsert(table).execute_many(session, rows)):
                with pytest.raises(StatementError) as raised:
                    run([{"n": 2}, {"n": 3}])
                assert isinstance(raised.value.orig, ValueError)
                assert "3 is odd" in str(raised.value)
            session.rollback()
    finally:
        engine.dispose()


def test_rows_insert_runs_each_engines_own_bind_processors():
    """Two SQLite engines: each one's rows go through its own dialect's bind processors (compiled
    per dialect, not once from the first engine seen)."""
    from sqlalchemy import Column, Integer, MetaData, String, TypeDecorator

    class Tagged(TypeDecorator):
        impl = String
        cache_ok = True

        def process_bind_param(self, value, dialect):
            return f"{value}@{dialect.tag}"

    table = Table("t_tagged", MetaData(), Column("n", Integer, primary_key=True), Column("name", Tagged))
    insert_rows = RowsInsert(table)
    for tag in ("first", "second"):
        engine = create_engine("sqlite://")
        engine.dialect.tag = tag
        try:
            with Session(engine) as session:
                table.create(session.connection())
                insert_rows.execute_many(session, [{"n": 1, "name": "x"}])
                assert session.execute(text("SELECT name FROM t_tagged")).scalar() == f"x@{tag}"
        finally:
            engine.dispose()
