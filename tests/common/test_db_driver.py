"""common.db_driver: which driver a session's rows go to (``driver_for_rows``) and its errors as
SQLAlchemy's (``as_sqlalchemy_error``, ``driver_errors``), for every hot path that talks to a driver."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, insert, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from common.db_driver import PSYCOPG, PYSQLITE, as_sqlalchemy_error, driver_errors, driver_for_rows

TABLE = Table("t_driver", MetaData(), Column("n", Integer, primary_key=True))


@pytest.fixture
def sqlite_session():
    engine = create_engine("sqlite://")
    TABLE.create(engine)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _stored(session: Session) -> list[int]:
    return session.execute(TABLE.select().order_by(TABLE.c.n)).scalars().all()


def test_driver_for_rows_runs_the_core_insert_for_a_driver_it_was_not_asked_for(sqlite_session):
    assert driver_for_rows(sqlite_session, insert(TABLE), []) is None
    assert driver_for_rows(sqlite_session, insert(TABLE), [{"n": 1}, {"n": 2}]) is None  # psycopg only
    assert _stored(sqlite_session) == [1, 2]


def test_driver_for_rows_hands_over_the_sessions_connection_for_a_driver_asked_for(sqlite_session):
    connection = driver_for_rows(sqlite_session, insert(TABLE), [{"n": 1}], (PSYCOPG, PYSQLITE))
    assert isinstance(connection, Connection) and connection is sqlite_session.connection()
    assert _stored(sqlite_session) == []  # left to the caller, on the driver
    connection.connection.driver_connection.execute("INSERT INTO t_driver (n) VALUES (7)")
    assert _stored(sqlite_session) == [7]  # in the session's transaction
    sqlite_session.rollback()
    assert _stored(sqlite_session) == []
    assert driver_for_rows(sqlite_session, insert(TABLE), [], (PYSQLITE,)) is None


def _core_error(session: Session) -> DBAPIError:
    session.execute(insert(TABLE), [{"n": 1}])
    with pytest.raises(DBAPIError) as raised:
        session.execute(insert(TABLE), [{"n": 1}])
    session.rollback()
    return raised.value


def _mapped(sql: str, dialect, run, **options) -> BaseException:
    """What a caller raises for ``run()``'s error: ``as_sqlalchemy_error``'s, or the error itself."""
    try:
        run()
    except Exception as error:
        return as_sqlalchemy_error(error, sql, None, dialect, **options) or error
    raise AssertionError("nothing raised")


def test_a_sqlite_drivers_error_is_raised_as_the_core_insert_raises_it(sqlite_session):
    core = _core_error(sqlite_session)
    connection = sqlite_session.connection()
    sql = "INSERT INTO t_driver (n) VALUES (?)"
    mapped = _mapped(sql, connection.dialect,
                     lambda: connection.connection.driver_connection.executemany(sql, [(1,), (1,)]))
    assert type(mapped) is type(core) is IntegrityError
    assert type(mapped.orig) is type(core.orig) is sqlite3.IntegrityError and mapped.statement == sql


def _refused() -> None:
    raise ValueError("refused by a bind processor")


def test_every_error_maps_a_non_driver_error_as_statement_error_only_when_asked(sqlite_session):
    dialect = sqlite_session.connection().dialect
    mapped = _mapped("SQL", dialect, _refused, every_error=True)
    assert type(mapped) is StatementError and isinstance(mapped.orig, ValueError)
    # The caller's own error (in a pipelined block, say): unchanged.
    for dialect_given in (dialect, None):
        assert type(_mapped("SQL", dialect_given, _refused)) is ValueError
    assert as_sqlalchemy_error(KeyboardInterrupt(), "SQL", None, dialect, every_error=True) is None
    with pytest.raises(ValueError, match="the caller's"), driver_errors("SQL", None):
        raise ValueError("the caller's")
    with driver_errors("SQL", None):  # nothing raised, nothing changed
        pass


def test_psycopgs_errors_are_mapped_without_a_dialect():
    """psycopg's error classes as SQLAlchemy's psycopg dialect maps them (by name, along the MRO)."""
    for error, expected in ((psycopg.errors.UniqueViolation("duplicate key"), IntegrityError),
                            (psycopg.OperationalError("server closed the connection"), OperationalError)):
        with pytest.raises(DBAPIError) as raised, driver_errors("SELECT 1", {"a": 1}):
            raise error
        assert type(raised.value) is expected and raised.value.orig is error
        assert raised.value.__cause__ is error and raised.value.params == {"a": 1}
    # Another module's errors are not psycopg's: unchanged.
    with pytest.raises(sqlite3.IntegrityError), driver_errors("SQL", None):
        raise sqlite3.IntegrityError("not psycopg's")


@pytest.mark.services
def test_a_psycopg_error_is_raised_as_the_core_insert_raises_it(databases, postgres_url):
    engine = create_engine(databases.fresh("seal"))
    try:
        with Session(engine) as session:
            TABLE.create(session.connection())
            session.commit()  # a rollback below would drop it on PostgreSQL
            core = _core_error(session)
            connection = driver_for_rows(session, insert(TABLE), [{"n": 1}])
            assert connection is not None and connection.dialect.driver == PSYCOPG
            sql = "INSERT INTO t_driver (n) VALUES (1), (1)"
            with pytest.raises(DBAPIError) as raised, driver_errors(sql, None):
                connection.connection.driver_connection.execute(sql)
            assert type(raised.value) is type(core) is IntegrityError
            assert type(raised.value.orig) is type(core.orig) is psycopg.errors.UniqueViolation
            session.rollback()
            assert session.execute(text("SELECT count(*) FROM t_driver")).scalar() == 0
    finally:
        engine.dispose()
