"""SQLAlchemy 2.0 engine and sessions for one service.

Each service owns its database; views get a request-scoped session through
:func:`get_session`, which is rolled back and closed on teardown, so a request that fails
half-way never leaves half-written rows: service functions commit explicitly at the end of
each use case.

Plain Python (no Flask), so models and domain modules import it freely: where the current
app and the request's state live is a :class:`RequestScope` that the web layer binds
(:mod:`common.web.database`, called by the app factory).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, DateTime, MetaData, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which drops tzinfo) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store aware UTC datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_base() -> type[DeclarativeBase]:
    """A declarative base with its own metadata: one per service, one database each."""

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)
        type_annotation_map = {datetime: UTCDateTime()}

    return Base


# The largest integer every database here holds (SQLite INTEGER, PostgreSQL bigint): numbers
# from requests are bounded by it at the edge (path converter, schemas), or binding one fails.
BIGINT_MAX = 2**63 - 1
# The largest value of an ``Integer`` column (PostgreSQL integer, 32 bits): every row id here.
# PostgreSQL refuses a larger parameter against such a column (a DataError, not "no row").
INTEGER_MAX = 2**31 - 1


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


SQLITE_SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")


def sqlite_synchronous() -> str:
    """``PRAGMA synchronous`` for SQLite databases, from ``XSN_SQLITE_SYNCHRONOUS`` (default FULL).

    Decision (docs/ARCHITECTURE.md): FULL by default. In WAL mode FULL syncs the WAL at every
    commit, so a commit that returned survives a power loss; NORMAL syncs only at checkpoints,
    which survives a crash of the process (the WAL is in the OS cache) but may lose the last
    commits on a power loss or kernel crash. Services here promise durable writes (a signature
    the caller received is in the signature log, and a published checkpoint may cover it), so
    the weaker mode is an explicit operator choice, never a silent default. OFF is not offered.
    Read from the environment, not the app config, because the engine is made before, and
    independently of, any one app (CLI, migrations, tests share this function).
    """
    value = os.environ.get("XSN_SQLITE_SYNCHRONOUS", "FULL").strip().upper()
    if value not in SQLITE_SYNCHRONOUS_MODES:
        raise ValueError(f"XSN_SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS_MODES)}, "
                         f"not {value!r}")
    return value


def _sqlite_pragmas(synchronous: str):
    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets gunicorn workers read while one writes; the busy timeout turns lock
        # contention into waiting rather than "database is locked" errors.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def _sqlite_begin_before_savepoint(conn, _name) -> None:
    """A SAVEPOINT that would be the first statement of a transaction opens it first.

    Python's sqlite3 (3.11, "legacy transaction control") sends BEGIN only before an INSERT,
    UPDATE or DELETE, so a ``session.begin_nested()`` opened before any write would start a
    transaction of its own and its RELEASE would commit it: a later rollback of the outer
    transaction would leave the savepoint's rows behind (all-or-nothing broken on SQLite).

    Why not SQLAlchemy's documented pysqlite recipe (``isolation_level = None`` on connect and
    BEGIN on every "begin" event), measured with 8 threads x 40 sessions that each SELECT and
    then INSERT on one WAL file with a busy timeout: with a deferred BEGIN 284 of 320 sessions
    failed with "database is locked" (their read snapshot went stale before they could write:
    SQLITE_BUSY_SNAPSHOT, which the busy timeout does not wait out); with BEGIN IMMEDIATE none
    failed, but every transaction, reads included, held the one write lock until it ended (7x
    the wall time), and a second session opened in the same thread while the first one was open
    waited on its own thread until the busy timeout ran out. Here nothing else changes: reads
    run outside a transaction as before, and the write lock is taken where the driver would take
    it anyway, at the savepoint that precedes the transaction's writes. IMMEDIATE because that
    lock is waited for under the busy timeout, never refused for a stale snapshot.
    An autocommit connection (``isolation_level="AUTOCOMMIT"``, driver ``isolation_level``
    None) is left alone: there a savepoint is its own transaction by choice.
    """
    _begin_immediate(conn)


def _begin_immediate(conn: Connection) -> None:
    """``BEGIN IMMEDIATE`` on a SQLite connection that is neither in a transaction already nor
    autocommit (driver ``isolation_level`` None: there each statement is its own transaction)."""
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection.isolation_level is not None and not dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def begin_write(session: Session) -> None:
    """From here to the end of its transaction, ``session`` is a writer that decides on what it
    reads: call it before the reads (``with_for_update``) that decide what a unit of work writes.

    On PostgreSQL this does nothing: the caller's row locks (``SELECT ... FOR UPDATE``) make a
    concurrent writer of the same rows wait, and a locking read sees the last commit. On SQLite
    ``FOR UPDATE`` is dropped and Python's ``sqlite3`` runs reads outside any transaction (see
    :func:`_sqlite_begin_before_savepoint`), so two units of work could both read a row as it was
    and both act on it (an order confirmed twice by its notification and the query fallback).
    Here the session's transaction begins now with ``BEGIN IMMEDIATE``: it holds SQLite's one
    write lock (waited for under the busy timeout) before its first read, so what it reads is the
    last commit and no other writer commits until it ends. A transaction already open holds that
    lock already (the driver begins one only before a write, and a savepoint begins it with
    ``BEGIN IMMEDIATE``), so nothing is sent then; nor on an autocommit connection.

    Hold it briefly: every other writer of the database waits meanwhile, so no call to another
    service (an institution, the seal node) between this and the commit. And no second session
    of the same database written in the same thread before this one ends: it would wait for this
    thread's own lock until the busy timeout.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        _begin_immediate(connection)


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous()))
        event.listen(engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


class Database:
    """The engine and session factory of one service."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session for work outside a request (CLI, tasks): rolled back unless committed."""
        session = self.sessionmaker()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class RequestScope(Protocol):
    """Where :func:`get_db` and :func:`get_session` find the current app and the state of the
    request (or app context) being served; :mod:`common.web.database` binds Flask's."""

    def current_app(self) -> Any: ...

    def state(self) -> Any:  # supports ``in``, ``pop(name, default)`` and attributes (flask.g)
        ...


_scope: RequestScope | None = None


def bind_request_scope(scope: RequestScope) -> None:
    global _scope
    _scope = scope


def _bound_scope() -> RequestScope:
    if _scope is None:
        raise RuntimeError("no request scope is bound: build the app with common.web.app.create_app")
    return _scope


def init_app(app: Any, url: str) -> Database:
    """Give ``app`` its database; the request's session is rolled back and closed on teardown."""
    database = Database(url)
    app.extensions["xsn_db"] = database

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session: Session | None = _bound_scope().state().pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()

    return database


def get_db(app: Any = None) -> Database:
    return (app or _bound_scope().current_app()).extensions["xsn_db"]


def request_session_open() -> bool:
    """Whether the current request (or app context) has opened its session already."""
    return "db_session" in _bound_scope().state()


def get_session() -> Session:
    """The request's session, created on first use."""
    state = _bound_scope().state()
    if "db_session" not in state:
        state.db_session = get_db().sessionmaker()
    return state.db_session
