"""The database drivers under SQLAlchemy, for hot paths that send their statements to them
directly: which driver a session is on and its connection (:func:`driver_connection`,
:func:`driver_for_rows`), the driver's errors as SQLAlchemy's (:func:`as_sqlalchemy_error`,
:class:`driver_errors`), and a pool of autocommit psycopg connections without pre-ping
(:class:`DriverPool`; one per engine and process: :func:`engine_driver_pool`). The Merkle logs'
statements and row inserts and the bulk licences' COPY take from here which driver a session is
on, and so do payment's one-statement writers (``PSYCOPG``); all of them take from here how that
driver's errors are raised.

Why such paths exist at all: SQLAlchemy's per-statement execution and its pool's checkout cost
more CPU than the few fixed statements of a signature's write, a verification or a ledger
transfer (measured in docs/ARCHITECTURE.md). psycopg is imported where it is used: a service on
SQLite never needs the driver.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.errors import ServiceUnavailable


class PoolTimeout(ServiceUnavailable):
    """No connection of a :class:`DriverPool` came free in time: the client is told 503
    ``database_busy`` (a Problem, so every service answers it the same way)."""

    code, title = "database_busy", "No database connection came free in time"


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


# SQLAlchemy's names of the drivers the hot paths speak to (``dialect.driver``): PostgreSQL's
# psycopg 3, and SQLite's dialect over ``sqlite3`` (or a module of its interface, ``module=``).
PSYCOPG = "psycopg"
PYSQLITE = "pysqlite"


def as_sqlalchemy_error(error: BaseException, sql: str, params: Any, dialect: Any = None, *,
                       every_error: bool = False) -> BaseException | None:
    """``error``, raised by a driver a hot path called itself (past SQLAlchemy's execute), as
    SQLAlchemy raises it (``IntegrityError`` for a unique violation, and so on; ``sql`` and
    ``params`` in it as in SQLAlchemy's), so callers catch the same exceptions on either path; or
    ``None`` when it is not the driver's: the caller's own error passes unchanged.

    ``dialect``: the engine's, for a driver other than psycopg: its DB-API module's errors are the
    driver's (an engine built with ``module=`` pysqlite3 raises that module's, not ``sqlite3``'s).
    Without one, psycopg's (no dialect needed: it only adds its translation map, empty for
    psycopg). ``every_error``: any other ``Exception`` is mapped too, as ``StatementError``, as
    SQLAlchemy raises an error of building a statement's parameters (a bind processor refusing a
    value): for code that runs nothing but the statement.
    """
    if dialect is None:
        import psycopg  # here, on an error only: a service on SQLite never needs the driver

        driver_error: type[Exception] = psycopg.Error
    else:
        driver_error = dialect.loaded_dbapi.Error
    if isinstance(error, driver_error) or (every_error and isinstance(error, Exception)):
        return DBAPIError.instance(sql, params, error, driver_error, dialect=dialect)
    return None


class driver_errors:  # lowercase: used as a function is, as contextlib.suppress
    """Within: an error of psycopg raised as SQLAlchemy raises it (:func:`as_sqlalchemy_error`);
    any other error passes unchanged (a block may hold the caller's own code:
    :func:`common.merkle_log.driver.pipelined`).

    A class, not a ``contextlib.contextmanager`` generator with its imports: a block costs ~5 k
    instructions against ~36 k (callgrind), and each driver statement runs in one. Code that runs
    nothing but its statement may catch the error itself and call :func:`as_sqlalchemy_error`:
    a ``try`` costs nothing until it fails (``RowsInsert`` on SQLite does).
    """

    __slots__ = ("_params", "_sql")

    def __init__(self, sql: str, params: Any) -> None:
        self._sql, self._params = sql, params

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        if error is not None and (mapped := as_sqlalchemy_error(error, self._sql, self._params)) is not None:
            raise mapped from error
        return False


def driver_connection(session: Session) -> Any:
    """The psycopg connection under ``session``'s transaction (begun if it was not), or ``None``
    when the session is not on PostgreSQL through psycopg: for a hot path that sends its
    statements to the driver itself."""
    connection = session.connection()
    if connection.dialect.driver != PSYCOPG:
        return None
    return connection.connection.driver_connection


def driver_for_rows(session: Session, statement: Any, rows: Sequence[Any],
                    drivers: tuple[str, ...] = (PSYCOPG,)) -> Connection | None:
    """The session's connection (SQLAlchemy's, in the session's transaction, begun if it was
    not) to insert ``rows`` on through its driver (``connection.connection.driver_connection``,
    within :class:`driver_errors`), or ``None`` when there is nothing left to do: no rows, or a
    driver not among ``drivers``, where ``statement`` (a Core INSERT) has just run with them.

    :raise SQLAlchemyError: the Core INSERT failed.
    """
    if not rows:
        return None
    connection = session.connection()
    if connection.dialect.driver in drivers:
        return connection
    connection.execute(statement, list(rows))
    return None


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
        self._retired = False  # its engine was disposed: every connection given back is closed
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
        # the libpq status as the int it is: ``conn.info.transaction_status`` builds an info object
        # and an enum member on every return (~8 k instructions, callgrind)
        usable = not pooled.conn.broken and pooled.conn.pgconn.transaction_status == self._idle_status
        with self._free:  # the generation is compared under the lock a dispose takes to change it
            if usable and pooled.generation == self._generation and not self._retired:
                self._idle.append(pooled)
                self._free.notify()
                return
        self.discard(pooled)

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

    def retire(self) -> None:
        """Close this pool for good (its engine was disposed): the idle connections now, those in
        use when given back. A :meth:`get` still works, for a thread that held the pool already;
        what it gets is closed when given back."""
        with self._free:
            self._retired = True
        self.dispose()

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
    shared across a fork), retired with ``engine`` (``Engine.dispose``; the next call builds a
    new one). Every caller of one engine passes the same ``size``.

    :raise ValueError: ``size`` differs from the pool's (two callers would each count on theirs).
    """
    found = _engine_pools.get(engine)
    if found is None or found[0] != os.getpid():
        with _engine_pools_lock:
            found = _engine_pools.get(engine)
            if found is None or found[0] != os.getpid():
                if not event.contains(engine, "engine_disposed", _dispose_engine_pool):
                    event.listen(engine, "engine_disposed", _dispose_engine_pool)
                pool = DriverPool(engine.url.render_as_string(hide_password=False), size=size)
                found = _engine_pools[engine] = (os.getpid(), pool)
    if found[1].size != size:
        raise ValueError(f"the driver pool of this engine holds {found[1].size} connections, not {size}")
    return found[1]


def _dispose_engine_pool(engine: Engine) -> None:
    with _engine_pools_lock:
        found = _engine_pools.pop(engine, None)
    if found is not None and found[0] == os.getpid():
        found[1].retire()
