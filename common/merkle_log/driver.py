"""Statements of a hot write path run on PostgreSQL's psycopg connection directly.

Why: SQLAlchemy's per-statement execution (parameter construction, type processing, result
set-up) cost more CPU than the statements of a signature's write themselves (issue 9,
docs/ARCHITECTURE.md, seal). A :class:`DriverStatement` is a Core statement compiled once, for
PostgreSQL's psycopg dialect, to fixed text that psycopg prepares per connection after a few
uses; it runs on the driver connection under the session's own transaction, so the session still
begins, commits and rolls back as before. Any other database (SQLite: development and most
tests) keeps the Core path; :func:`driver_connection` says which one applies.

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
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

_DIALECT = psycopg_dialect()


def on_psycopg(engine: Engine) -> bool:
    return engine.dialect.driver == "psycopg"


def driver_connection(session: Session) -> psycopg.Connection | None:
    """The psycopg connection under ``session``'s transaction (begun if it was not), or ``None``
    when the session is not on PostgreSQL through psycopg."""
    connection = session.connection()
    if connection.dialect.driver != "psycopg":
        return None
    return connection.connection.driver_connection  # type: ignore[return-value]


class DriverStatement:
    """A Core statement as fixed psycopg text, with its constant parameters (literals of the
    expression) merged under the ones given at execution."""

    def __init__(self, statement: ClauseElement, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=_DIALECT, column_keys=list(column_keys) if column_keys else None)
        self.sql = str(compiled)
        self.constants = {compiled.bind_names[bind]: bind.value for bind in compiled.binds.values()
                          if not bind.required and bind.value is not None}

    def _params(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**self.constants, **params} if self.constants else params

    def first(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> tuple | None:
        """The first row (``None`` without one)."""
        with _as_sqlalchemy_errors(self.sql, params):
            return connection.execute(self.sql, self._params(params)).fetchone()

    def named(self, connection: psycopg.Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row as a named tuple (columns by attribute, like a SQLAlchemy row), or ``None``."""
        with _as_sqlalchemy_errors(self.sql, params), connection.cursor(row_factory=namedtuple_row) as cursor:
            return cursor.execute(self.sql, self._params(params)).fetchone()

    def named_autocommit(self, engine: Engine, params: Mapping[str, Any]) -> Any | None:
        """:meth:`named` as a statement of its own (autocommit, no BEGIN/ROLLBACK) on a pooled
        connection taken for it alone: no SQLAlchemy ``Connection`` or session transaction is set
        up and torn down around it (the pool still pre-pings it, as every checkout). The connection
        goes back as it came (not in autocommit), or is invalidated if that fails."""
        fairy = engine.raw_connection()
        try:
            connection = fairy.driver_connection
            connection.autocommit = True
            try:
                return self.named(connection, params)
            finally:
                try:
                    connection.autocommit = False
                except psycopg.Error:  # broken meanwhile: not given back to the pool
                    fairy.invalidate()
        finally:
            fairy.close()

    def execute_many(self, connection: psycopg.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """One execution per row, pipelined by psycopg (one round trip for all of them)."""
        if not rows:
            return
        with _as_sqlalchemy_errors(self.sql, rows), connection.cursor() as cursor:
            cursor.executemany(self.sql, [self._params(row) for row in rows] if self.constants else rows)


@contextmanager
def _as_sqlalchemy_errors(sql: str, params: Any) -> Iterator[None]:
    """A driver error as SQLAlchemy would raise it (``IntegrityError`` for a unique violation,
    and so on), so callers catch the same exceptions on either path."""
    try:
        yield
    except psycopg.Error as error:
        raise DBAPIError.instance(sql, params, error, psycopg.Error, dialect=_DIALECT) from error
