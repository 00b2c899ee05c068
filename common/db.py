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
import threading
import weakref
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import DateTime, MetaData, create_engine, event, make_url, text
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
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection.isolation_level is not None and not dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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


class PoolTimeout(Exception):
    """No connection of a :class:`DriverPool` came free in time."""


class Pooled:
    """A connection of a :class:`DriverPool` and the one cursor every statement on it uses;
    ``discarded`` once the pool has closed it and given back its place (only once); ``generation``
    is the pool's when it was opened (a :meth:`DriverPool.dispose` since then: closed when put back)."""

    __slots__ = ("conn", "cursor", "discarded", "generation")

    def __init__(self, conn, generation: int = 0) -> None:
        self.conn = conn
        self.cursor = conn.cursor()
        self.discarded = False
        self.generation = generation


@contextlib.contextmanager
def driver_errors(sql: str, params: Any) -> Iterator[None]:
    """An error of psycopg, raised by a statement sent to the driver itself (a hot path that
    skips SQLAlchemy's execute), as SQLAlchemy would raise it (``IntegrityError`` for a unique
    violation, and so on), so callers catch the same exceptions on either path. One mapping for
    every such path (the Merkle log's driver statements, payment's one-statement writer).
    No dialect is passed: it only adds the dialect's translation map, empty for psycopg."""
    import psycopg  # here: a service on SQLite never needs the driver
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except psycopg.Error as error:
        raise DBAPIError.instance(sql, params, error, psycopg.Error) from error


def driver_connection(session: Session) -> Any:
    """The psycopg connection under ``session``'s transaction (begun if it was not), or ``None``
    when the session is not on PostgreSQL through psycopg: for a hot path that sends its
    statements to the driver itself."""
    connection = session.connection()
    if connection.dialect.driver != "psycopg":
        return None
    return connection.connection.driver_connection


def driver_for_rows(session: Session, statement: Any, rows: Sequence[Any]) -> Any:
    """The driver connection to insert ``rows`` on, or ``None`` when there is nothing left to do:
    no rows, or not on psycopg, where ``statement`` (a Core INSERT) has just run with them."""
    if not rows:
        return None
    connection = driver_connection(session)
    if connection is None:
        session.connection().execute(statement, list(rows))
    return connection

class DriverPool:
    """Connections of the PostgreSQL driver itself (psycopg), for a hot path that sends a few
    fixed statements: autocommit (each statement commits as it ends), no pre-ping, and no
    SQLAlchemy pool, connection wrapper or per-call cursor in the way.

    Why: through SQLAlchemy's pool a checkout and return cost more than a prepared statement's
    own client work (the pool's bookkeeping, the connection fairy, the reset on return; with
    ``pool_pre_ping`` a ``SELECT 1`` round trip too). Here a checkout is a list pop under a
    lock. Each connection comes with one cursor (:class:`Pooled`), reused for every statement
    sent on it (psycopg builds a cursor, with its adapters map, per ``connection.execute``).

    Why not ``psycopg_pool`` (maintained with psycopg; not a dependency here): it would not be
    cheaper. Measured in one process (20,000 checkouts and returns of an autocommit connection,
    thread CPU, best of 5, psycopg-pool 3.3.3): 2.25 µs here against 2.48 µs for its
    ``getconn``/``putconn``, 21.7 against 22.2 µs with a ``SELECT 1`` on a kept cursor. It would
    add a package, four threads per pool (three connection workers, a scheduler) in every
    gunicorn worker, and this pool's cursor per connection would still have to be kept beside it.

    A connection the server closed meanwhile (restart, idle timeout) is not detected at
    checkout: its next statement fails (``psycopg.OperationalError``) and the caller decides
    whether that statement may be sent again on a :meth:`replace`-ment (a read may; a write
    whose outcome is unknown may not). :meth:`put` drops a connection that is broken, was
    left inside a transaction, or was opened before a :meth:`dispose`. At most ``size``
    connections are open; a caller beyond that waits up to ``timeout`` seconds
    (:class:`PoolTimeout`). Build it in the process that uses it (a gunicorn worker, after the
    fork): connections are not shared across a fork.
    """

    def __init__(self, url: str, *, size: int, timeout: float = 30.0) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError(f"DriverPool needs a PostgreSQL URL, not {parsed.get_backend_name()}")
        _args, self._connect_kwargs = parsed.get_dialect()().create_connect_args(parsed)
        # imported here, once per pool: a service on SQLite never needs the driver
        from psycopg.pq import TransactionStatus

        self._idle_status = TransactionStatus.IDLE
        self._generation = 0  # one more at each dispose
        self.size, self.timeout = size, timeout
        self._idle: list[Pooled] = []
        self._open = 0
        self._free = threading.Condition(threading.Lock())

    def get(self) -> Pooled:
        """A connection (``psycopg.Connection``, autocommit) with its cursor; give it back with
        :meth:`put`.

        :raise PoolTimeout: ``size`` connections are in use for ``timeout`` seconds.
        :raise psycopg.OperationalError: a new connection could not be made.
        """
        with self._free:
            if self._idle:
                return self._idle.pop()
            if self._open >= self.size and not self._free.wait_for(
                    lambda: self._idle or self._open < self.size, self.timeout):
                raise PoolTimeout(f"no database connection came free in {self.timeout:g} s")
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return self._connect()
        except BaseException:
            self._closed()
            raise

    def put(self, pooled: Pooled) -> None:
        """Give a connection back; one that is broken or inside a transaction is closed instead,
        and one discarded already (a failed :meth:`replace`) is left as it is."""
        if pooled.discarded:
            return
        if (pooled.conn.broken or pooled.conn.info.transaction_status != self._idle_status
                or pooled.generation != self._generation):
            self.discard(pooled)
            return
        with self._free:
            self._idle.append(pooled)
            self._free.notify()

    def discard(self, pooled: Pooled) -> None:
        """Close a connection taken with :meth:`get` for good and give back its place; a second
        discard of the same one does nothing (its place was given back once)."""
        with self._free:
            if pooled.discarded:
                return
            pooled.discarded = True
        with contextlib.suppress(Exception):
            pooled.conn.close()
        self._closed()

    def replace(self, pooled: Pooled) -> Pooled:
        """A new connection in place of ``pooled``, which the caller found closed by the server.

        ``pooled`` is discarded first (if making the new one fails, giving ``pooled`` back
        afterwards changes nothing), and so are the idle connections (those in use, when given
        back: :meth:`dispose`): what closed one (a server restart, an idle timeout) closed those
        too, and a retry on one of them would fail again.

        :raise PoolTimeout, psycopg.OperationalError: as :meth:`get`.
        """
        self.discard(pooled)
        self.dispose()
        return self.get()

    @property
    def idle_count(self) -> int:
        """Connections open and waiting in the pool (not in use)."""
        return len(self._idle)

    def dispose(self) -> None:
        """Close the idle connections (tests, shutdown, :meth:`replace`); those in use now are
        closed when put back (they belong to an older generation)."""
        with self._free:
            idle, self._idle = self._idle, []
            self._generation += 1
        for conn in idle:
            self.discard(conn)

    def _connect(self) -> Pooled:
        import psycopg  # here: a service on SQLite never needs the driver

        generation = self._generation  # before connecting: a dispose meanwhile closes it when put back
        return Pooled(psycopg.connect(autocommit=True, **self._connect_kwargs), generation)

    def _closed(self) -> None:
        with self._free:
            self._open -= 1
            self._free.notify()


# engine -> (the process that built it, its DriverPool)
_engine_pools: weakref.WeakKeyDictionary[Engine, tuple[int, DriverPool]] = weakref.WeakKeyDictionary()
_engine_pools_lock = threading.Lock()


def engine_driver_pool(engine: Engine, *, size: int) -> DriverPool:
    """The :class:`DriverPool` on ``engine``'s database for this process, beside the engine's
    own pool: one per engine and process (a forked worker builds its own, as connections are not
    shared across a fork), disposed with ``engine`` (``Engine.dispose``). ``size`` is the first
    caller's; every caller of one engine passes the same."""
    found = _engine_pools.get(engine)
    if found is not None and found[0] == os.getpid():
        return found[1]
    with _engine_pools_lock:
        found = _engine_pools.get(engine)
        if found is None or found[0] != os.getpid():
            if found is None:
                event.listen(engine, "engine_disposed", _dispose_engine_pool)
            pool = DriverPool(engine.url.render_as_string(hide_password=False), size=size)
            found = _engine_pools[engine] = (os.getpid(), pool)
    return found[1]


def _dispose_engine_pool(engine: Engine) -> None:
    with _engine_pools_lock:
        found = _engine_pools.pop(engine, None)
    if found is not None and found[0] == os.getpid():
        found[1].dispose()


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
