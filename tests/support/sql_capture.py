"""What went through SQLAlchemy: tests that count the statements a piece of code sends (a
bounded number of reads, one multi-row ``INSERT``), and tests of
``common.merkle_log.driver.RowsInsert``, whose rows should go to the driver itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Table, event
from sqlalchemy.orm import Session


@contextmanager
def statements_sent(session: Session, keep: Callable[[str], bool] = lambda _statement: True) -> Iterator[list[str]]:
    """The SQL statements (those ``keep`` accepts) that the session's engine sends inside the
    block, as sent, an ``executemany`` once (a ``before_cursor_execute`` listener)."""
    engine = session.get_bind()
    seen: list[str] = []

    def listener(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        if keep(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def verbs(statements: list[str]) -> list[str]:
    """Each statement's first word, upper case: ``["SELECT", "INSERT"]``."""
    return [statement.split(None, 1)[0].upper() for statement in statements]


def inserts_through_sqlalchemy(session: Session, table: Table) -> AbstractContextManager[list[str]]:
    """The ``INSERT`` statements into ``table`` that went through SQLAlchemy inside the block:
    none when ``RowsInsert`` sent its rows to the driver itself (psycopg or ``sqlite3``), one
    when it fell back to the Core ``INSERT``."""
    prefix = f"INSERT INTO {table.name.upper()} "
    return statements_sent(session, lambda statement: statement.lstrip().upper().startswith(prefix))
