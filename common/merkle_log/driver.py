"""Statements of a hot write path, run on PostgreSQL's psycopg connection directly.

Why: SQLAlchemy's per-statement execution (parameter construction, type processing, result
set-up) cost more CPU than the statements of a signature's write themselves (issue 9,
docs/ARCHITECTURE.md, seal). A :class:`DriverStatement` holds a Core statement and the same
statement compiled once, for PostgreSQL's psycopg dialect, to fixed text that psycopg prepares per
connection after a few uses; it is the one place that chooses how to run it: on a session on
psycopg, the fixed text on the driver connection under the session's own transaction (the
session still begins, commits and rolls back as before); on any other database (SQLite:
development and most tests), the Core statement through SQLAlchemy. Callers pass the session
and never choose. Driver errors are raised as SQLAlchemy would raise them (``IntegrityError``
for a unique violation), so callers catch the same exceptions either way.

Only for statements whose parameters need no SQLAlchemy type processing: strings, integers,
bytes and aware datetimes (what ``common.db.UTCDateTime`` would pass on unchanged on PostgreSQL).
:class:`RowsInsert` (a batch of rows, the Merkle logs' appends) goes to the driver on SQLite too,
with the columns' bind processors run on the values.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from common.db_driver import (
    PSYCOPG,
    PYSQLITE,
    as_sqlalchemy_error,
    driver_connection,
    driver_errors,
    driver_for_rows,
    engine_driver_pool,
)

_DIALECT = psycopg_dialect()
# Connections of an engine's read pool (:meth:`DriverStatement.first_alone`) in one process. A
# gunicorn worker runs at most its thread count of requests at once, and the seal's run 16
# threads (``seal/processes.py``), so up to 8 of them may wait for a connection (30 s at most)
# instead of opening another; a read is one short statement, so the wait is short.
READ_POOL_SIZE = 8
# The drivers :class:`RowsInsert` sends its rows to itself; any other takes the Core INSERT.
_ROWS_DRIVERS = (PSYCOPG, PYSQLITE)


@contextmanager
def pipelined(session: Session, *, commit: bool = False) -> Iterator[None]:
    """The session's driver statements run inside as one round trip (psycopg pipeline mode: one
    Sync for all of them instead of one per statement); nothing changes on another database.
    An error of any statement inside is raised when the block ends, as SQLAlchemy's.

    ``commit``: when the block ends without an error, the session's transaction is committed
    too. On psycopg the ``COMMIT`` is queued behind the block's statements and goes with their
    Sync, so the block's last statements, the commit and its WAL flush are one round trip (a
    lock taken inside is released as soon as the flush is done, with no exchange in between);
    the block returns once the commit's answer came back, or raises its error (after an error of
    any statement inside, the ``COMMIT`` is skipped with the rest and the transaction is left to
    roll back). The session's own ``commit()`` afterwards finds nothing left to commit (psycopg
    sends nothing for a connection outside a transaction). Elsewhere ``session.commit()``.
    """
    connection = driver_connection(session)
    if connection is None:
        yield
        if commit:
            session.commit()
        return
    with driver_errors("(pipeline)", None), connection.pipeline():
        yield
        if commit:
            connection.execute("COMMIT")


def plain_rows(session: Session, sql: str) -> list[tuple]:
    """The rows of a plain SQL text without parameters (no ``%`` in it), in the session's
    transaction: on psycopg on the driver connection (also inside :func:`pipelined`), elsewhere
    through SQLAlchemy's ``exec_driver_sql``."""
    connection = driver_connection(session)
    if connection is None:
        return [tuple(row) for row in session.connection().exec_driver_sql(sql)]
    with driver_errors(sql, None), connection.cursor() as cursor:
        return cursor.execute(sql).fetchall()


class DriverStatement:
    """A Core statement, run as fixed psycopg text on PostgreSQL and through SQLAlchemy Core
    elsewhere (see the module's doc). The literals of the expression are merged under the
    parameters given at execution on the driver path, as Core does."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.constants = {compiled.bind_names[bind]: bind.value for bind in compiled.binds.values()
                          if not bind.required and bind.value is not None}

    def bound_params(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` with the statement's own literals under them, as the driver text takes them."""
        return {**self.constants, **params} if self.constants else params

    def first(self, session: Session, params: Mapping[str, Any]) -> Any | None:
        """The first row (columns by attribute and by position), or ``None``, in the session's transaction."""
        connection = driver_connection(session)
        if connection is None:
            return session.connection().execute(self.statement, params).first()
        return self._first(connection, params)

    def first_alone(self, session: Session, params: Mapping[str, Any]) -> Any | None:
        """:meth:`first` as a statement of its own, outside any transaction of the session's (one
        statement is a snapshot by itself; no ``BEGIN``/``ROLLBACK`` around it).

        On psycopg it runs on a connection of the engine's read pool
        (:func:`common.db_driver.engine_driver_pool`, ``READ_POOL_SIZE`` connections at most): autocommit,
        no SQLAlchemy ``Connection`` or session transaction set up and torn down around it, no
        isolation-level switch and no pre-ping round trip. Elsewhere it runs on the session's
        connection in autocommit. The session must not be in a transaction.
        """
        engine = session.get_bind()
        if engine.dialect.driver != PSYCOPG:
            connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return connection.execute(self.statement, params).first()
        readers = engine_driver_pool(engine, size=READ_POOL_SIZE)
        with driver_errors("(connect)", None):  # a connection that cannot be made: as SQLAlchemy raises it
            pooled = readers.get()  # a full pool: PoolTimeout, 503 database_busy
        try:
            try:
                return self._first(pooled.conn, params)
            except DBAPIError:
                # Without a pre-ping, a connection the server closed meanwhile (a restart, an
                # idle timeout) is found here. After a restart or failover every idle connection
                # of the pool is dead too: ``replace`` closes them all with this one, and the read
                # is tried once on a connection opened for it.
                if not pooled.conn.broken:
                    raise
                with driver_errors("(connect)", None):
                    pooled = readers.replace(pooled)
                return self._first(pooled.conn, params)
        finally:
            readers.put(pooled)  # a discarded one (a failed replace) is left as it is

    def _first(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> Any | None:
        with driver_errors(self.sql, params), connection.cursor(row_factory=namedtuple_row) as cursor:
            return cursor.execute(self.sql, self.bound_params(params)).fetchone()


class RowsInsert:
    """An ``INSERT`` of many rows of ``table`` (every column given), the cheapest way each
    database takes it: on PostgreSQL one statement of column arrays, on SQLite through the
    standard library's ``sqlite3`` the driver's own ``executemany`` of tuples, elsewhere the Core
    ``INSERT`` with the rows. Same rows, same constraints either way, and a driver error is raised
    as SQLAlchemy raises it (``IntegrityError`` for a unique violation).

    The driver paths send their statement past SQLAlchemy's execution: the engine's
    ``before_cursor_execute``/``after_cursor_execute`` events are not run for it and ``echo``
    does not log it (a listener that counts or inspects statements does not see these inserts).

    Why on PostgreSQL: psycopg's ``executemany`` binds, dumps and executes every row on its own,
    in Python (about a tenth of a batch signature's worker CPU for its entry, node and signature
    rows), and the backend runs one execution per row. Here each column goes as one array
    parameter and ``unnest`` turns them back into rows: ``INSERT INTO t (a, b) SELECT * FROM
    unnest(%b::bigint[], %b::text[])``, one fixed text (prepared per connection like the rest)
    whatever the number of rows; the column types still check lengths on assignment. Per audit
    record moved in batches of 500 it took the writer process 53-62 -> 21-23 µs of CPU and its
    backend 29-33 -> 15-16 against the Core ``INSERT``'s executemany (15-18 over later runs:
    ``AUDIT_WRITER_INTERVAL``'s figures, gateway/audit/config.py).

    Why not psycopg's binary ``COPY``: the signature writer sends these inserts inside
    :func:`pipelined`, with the log head's lock held, so that they and the ``COMMIT`` go in one
    round trip; psycopg refuses ``COPY`` in pipeline mode (``NotSupportedError``), and outside
    one it is an exchange of its own per table (the statement, the server's go-ahead, the data),
    each while the lock is held.

    Why on SQLite: SQLAlchemy's ``executemany`` builds and type-processes every row's parameters
    in Python, which cost more than SQLite's own insert for the audit writer's rows (measured per
    row: 3.0 against 1.4 µs for a node, ~10 against ~8 for a record with its six indexes). The
    values are what SQLAlchemy would bind: the columns' own bind processors (``UTCDateTime``'s,
    an aware datetime written as SQLite's UTC text, say) run on them. Only on SQLAlchemy's
    ``pysqlite`` dialect (``sqlite3``, or a module of its interface given as ``module=``), whose
    DB-API errors ``common.db_driver.as_sqlalchemy_error`` maps; any other SQLite driver takes
    the Core ``INSERT``. Which driver a session is on: ``common.db_driver.driver_for_rows``.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self.statement = insert(table)
        self.columns = [column.key for column in table.c]
        types = [_array_type(column.type.compile(dialect=_DIALECT)) for column in table.c]
        # The columns whose arrays are built by hand (:func:`_binary_array`): position, type.
        self.hand_built = [(position, name) for position, name in enumerate(types) if name in _HAND_BUILT_KINDS]
        arrays = ", ".join(f"%b::{name}[]" for name in types)
        quote = _DIALECT.identifier_preparer
        names = ", ".join(quote.quote(column.name) for column in table.c)
        # Built from the table's own metadata (quoted names, compiled types): no input in it.
        self.sql = f"INSERT INTO {quote.format_table(table)} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608
        # The SQLite statement and bind processors of each dialect (an engine's), compiled on its
        # first use: the processors are the dialect's own and may differ between engines. Weak, so
        # a disposed engine's dialect is not kept; a look-up costs ~0.13 µs per batch.
        self._sqlite: WeakKeyDictionary[Any, _SQLiteInsert] = WeakKeyDictionary()

    def execute_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (each with every column) in the session's transaction.

        :raise IntegrityError: a row breaks a constraint (a duplicate key, say); other driver
            errors as the matching ``DBAPIError``, a value a column's type refuses as
            ``StatementError``, as SQLAlchemy raises them.
        """
        connection = driver_for_rows(session, self.statement, rows, _ROWS_DRIVERS)
        if connection is None:  # no rows, or another driver: the Core INSERT has run
            return
        dialect = connection.dialect
        if dialect.driver == PSYCOPG:
            self._postgresql(connection.connection.driver_connection, rows)
        else:  # PYSQLITE
            (self._sqlite.get(dialect) or self._prepare_sqlite(dialect)).execute(connection, rows)

    def _postgresql(self, connection: psycopg.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        params: list[Any] = [[row[key] for row in rows] for key in self.columns]
        # PostgreSQL reads a binary text value in the connection's client_encoding, and the
        # hand-built text arrays are UTF-8 ("utf-8" is psycopg's name for UTF8): on any other
        # client encoding the text columns go as lists, which psycopg encodes in it.
        utf8 = connection.info.encoding == "utf-8"
        for position, kind in self.hand_built:
            if utf8 or kind == "BYTEA":
                params[position] = _binary_array(params[position], kind)
        with driver_errors(self.sql, None), connection.cursor() as cursor:
            cursor.adapters.register_dumper(_ByteaArray, _ByteaArrayDumper)
            cursor.adapters.register_dumper(_TextArray, _TextArrayDumper)
            cursor.execute(self.sql, params)

    def _prepare_sqlite(self, dialect: Any) -> _SQLiteInsert:
        compiled = self.statement.compile(dialect=dialect)
        names = list(compiled.positiontup or ())
        if sorted(names) != sorted(self.columns):  # every column, once: the rows carry them all
            raise RuntimeError(f"unexpected parameters {names} for {self.table.name}")
        # The dialect's implementation of each type, as SQLAlchemy binds it (a TypeDecorator's own
        # bind_processor is only its half: UTCDateTime's, not the SQLite DATETIME's text).
        processors = [(position, process) for position, name in enumerate(names)
                      if (process := self.table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
                      is not None]
        prepared = self._sqlite[dialect] = _SQLiteInsert(str(compiled), names, processors)
        return prepared


class _SQLiteInsert:
    """:class:`RowsInsert`'s statement for ``sqlite3``: its text, each row's values in its
    parameters' order, and the bind processors to run on some of them."""

    def __init__(self, sql: str, names: list[str], processors: list[tuple[int, Any]]) -> None:
        self.sql, self.processors = sql, processors
        getter = operator.itemgetter(*names)
        # itemgetter of one name gives the value, not a tuple of it
        self.values_of = getter if len(names) > 1 else lambda row: (getter(row),)

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            params: list[Any] = [self.values_of(row) for row in rows]
            if self.processors:
                params = [list(values) for values in params]
                for values in params:
                    for position, process in self.processors:
                        values[position] = process(values[position])
            # On the session's own connection, under its transaction (sqlite3 begins one before
            # an INSERT if none is open; SQLAlchemy's commit or rollback ends it).
            connection.connection.driver_connection.executemany(self.sql, params)
        except Exception as error:
            # As the Core INSERT raises it: the engine's own DB-API module's errors (an engine
            # built with ``module=`` pysqlite3 or sqlean raises its module's) as DBAPIError's
            # subclasses, any other (a bind processor refusing a value, a row without a column)
            # as StatementError. A try, not driver_errors' block: free until it fails.
            mapped = as_sqlalchemy_error(error, self.sql, None, connection.dialect, every_error=True)
            if mapped is None:  # not an Exception mapping covers: as it came
                raise
            raise mapped from error


_HEADER = struct.Struct("!iiI")  # dimensions, has nulls, element type
_DIMENSION = struct.Struct("!ii")  # length, lower bound
_LENGTH = struct.Struct("!i")


class _ByteaArray(bytes):
    """A ``bytea[]`` parameter already in PostgreSQL's binary array format (:func:`_binary_array`)."""


class _TextArray(bytes):
    """A ``text[]`` parameter already in PostgreSQL's binary array format."""


class _ByteaArrayDumper(Dumper):
    format = pq.Format.BINARY
    oid = 1001  # bytea[]

    def dump(self, obj: Any) -> bytes:
        return obj


class _TextArrayDumper(_ByteaArrayDumper):
    oid = 1009  # text[]


def _binary_array(values: Sequence[Any], kind: str) -> bytes | list[Any]:
    """``values`` of a ``BYTEA`` or text column as PostgreSQL's binary array, or the list as it
    is when a value is neither ``None`` nor of the column's Python type (psycopg dumps it then).

    Why: psycopg's list dumper copies each element through its dumper in Python: ~33 us for a
    23 KB DER (a signature's) where this only joins it (~1 us), and ~0.4 us per short string.
    The format: header (1 dimension, has-null flag, element type), dimension (length, lower
    bound 1), then each element's length (-1 for NULL) and bytes (UTF-8 for text: only for a
    connection whose client_encoding is UTF8, :meth:`RowsInsert.execute_many`).
    """
    text = kind != "BYTEA"
    parts = [b"", _DIMENSION.pack(len(values), 1)]
    nulls = 0
    for value in values:
        if value is None:
            nulls = 1
            parts.append(_LENGTH.pack(-1))
            continue
        if type(value) is not (str if text else bytes):
            return list(values)
        data = value.encode() if text else value
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    parts[0] = _HEADER.pack(1, nulls, 25 if text else 17)  # text, bytea
    return (_TextArray if text else _ByteaArray)(b"".join(parts))


_HAND_BUILT_KINDS = frozenset(("BYTEA", "TEXT", "VARCHAR"))


def _array_type(sql_type: str) -> str:
    """The element type of a column's array parameter: its type without a length (``VARCHAR(64)``
    is ``VARCHAR``; the column's own type still checks the length on assignment)."""
    return sql_type.split("(", 1)[0]

