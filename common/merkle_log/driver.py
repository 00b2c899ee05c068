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
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

_DIALECT = psycopg_dialect()


def driver_connection(session: Session) -> psycopg.Connection | None:
    """The psycopg connection under ``session``'s transaction (begun if it was not), or ``None``
    when the session is not on PostgreSQL through psycopg."""
    connection = session.connection()
    if connection.dialect.driver != "psycopg":
        return None
    return connection.connection.driver_connection  # type: ignore[return-value]


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
    with sqlalchemy_errors("(pipeline)", None), connection.pipeline():
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
    with sqlalchemy_errors(sql, None), connection.cursor() as cursor:
        return cursor.execute(sql).fetchall()


class DriverStatement:
    """A Core statement, run as fixed psycopg text on PostgreSQL and through SQLAlchemy Core
    elsewhere (see the module's doc). The literals of the expression are merged under the
    parameters given at execution on the driver path, as Core does."""

    def __init__(self, statement: ClauseElement, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=_DIALECT, column_keys=list(column_keys) if column_keys else None)
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

        On psycopg it runs on a pooled connection taken for it alone, in autocommit: no SQLAlchemy
        ``Connection`` or session transaction is set up and torn down around it (the pool still
        pre-pings it, as every checkout); the connection goes back as it came (not in
        autocommit), or is invalidated if that fails. Elsewhere it runs on the session's
        connection in autocommit. The session must not be in a transaction.
        """
        engine = session.get_bind()
        if engine.dialect.driver != "psycopg":
            connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return connection.execute(self.statement, params).first()
        fairy = engine.raw_connection()
        try:
            connection = fairy.driver_connection
            connection.autocommit = True
            try:
                return self._first(connection, params)
            finally:
                try:
                    connection.autocommit = False
                except psycopg.Error:  # broken meanwhile: not given back to the pool
                    fairy.invalidate()
        finally:
            fairy.close()

    def execute_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """One execution per row in the session's transaction (on psycopg pipelined: one round
        trip for all of them, or none of its own inside :func:`pipelined`)."""
        if not rows:
            return
        connection = driver_connection(session)
        if connection is None:
            session.connection().execute(self.statement, list(rows))
            return
        with sqlalchemy_errors(self.sql, rows), connection.cursor() as cursor:
            cursor.executemany(self.sql, [self.bound_params(row) for row in rows] if self.constants else rows)

    def _first(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> Any | None:
        with sqlalchemy_errors(self.sql, params), connection.cursor(row_factory=namedtuple_row) as cursor:
            return cursor.execute(self.sql, self.bound_params(params)).fetchone()


@contextmanager
def sqlalchemy_errors(sql: str, params: Any) -> Iterator[None]:
    """A driver error as SQLAlchemy would raise it (``IntegrityError`` for a unique violation,
    and so on), so callers catch the same exceptions on either path."""
    try:
        yield
    except psycopg.Error as error:
        raise DBAPIError.instance(sql, params, error, psycopg.Error, dialect=_DIALECT) from error
