"""common.db's SQLite engine: a savepoint stays inside the transaction it is part of, and a unit of
work that decides on what it reads reads under the write lock (``begin_write``)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from common.db import Database, begin_write, make_base

Base = make_base()


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Row))


def test_a_released_first_savepoint_is_rolled_back_with_its_transaction(db):
    # The savepoint is the transaction's first statement: without common.db's BEGIN the driver
    # would let it start a transaction of its own, and its RELEASE would commit the row.
    with db.session() as session:
        with session.begin_nested():
            session.add(Row(id=1))
        session.add(Row(id=2))
        session.flush()
        session.rollback()
    assert _count(db) == 0


def test_reads_before_the_first_savepoint_do_not_change_that(db):
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Row)) == 0
        with session.begin_nested():
            session.add(Row(id=1))
        session.rollback()
    assert _count(db) == 0


def test_a_committed_savepoint_and_a_refused_one(db):
    with db.session() as session:
        with pytest.raises(RuntimeError), session.begin_nested():
            session.add(Row(id=1))
            session.flush()
            raise RuntimeError("refused: only this savepoint goes")
        with session.begin_nested():
            session.add(Row(id=2))
        session.commit()
    with db.session() as session:
        assert session.scalars(select(Row.id)).all() == [2]


def test_an_autocommit_connection_keeps_autocommitting(db):
    with Session(db.engine) as session:
        connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        with session.begin_nested():
            session.add(Row(id=1))
        assert not connection.connection.dbapi_connection.in_transaction
        session.rollback()
    assert _count(db) == 1
    # the pooled connection is back in transactional mode for the next user
    with db.session() as session:
        with session.begin_nested():
            session.add(Row(id=2))
        session.rollback()
    assert _count(db) == 1


def test_a_writer_that_decides_on_what_it_reads_reads_the_last_commit(db):
    # Without begin_write the second session's read runs outside any transaction while the first
    # one holds its uncommitted row: it would count 0 and act on that.
    seen, reading = {}, threading.Event()

    def second() -> None:
        with db.session() as session:
            reading.set()
            begin_write(session)
            seen["rows"] = session.scalar(select(func.count()).select_from(Row))
            session.rollback()

    with db.session() as first:
        begin_write(first)
        first.add(Row(id=1))
        first.flush()
        thread = threading.Thread(target=second)
        thread.start()
        assert reading.wait(10)
        time.sleep(0.3)  # the second session's read, were it not waiting for the lock
        assert "rows" not in seen
        first.commit()
    thread.join(10)
    assert seen == {"rows": 1}


def test_begin_write_in_a_transaction_that_wrote_already_sends_nothing(db):
    with db.session() as session:
        session.add(Row(id=1))
        session.flush()  # the driver's own BEGIN, and the write lock with the INSERT
        begin_write(session)  # a second BEGIN would fail: "cannot start a transaction within a transaction"
        session.commit()
    assert _count(db) == 1
