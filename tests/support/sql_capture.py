"""What went through SQLAlchemy: tests of ``common.merkle_log.driver.RowsInsert``, whose rows
should go to the driver itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Table, event
from sqlalchemy.orm import Session


@contextmanager
def inserts_through_sqlalchemy(session: Session, table: Table) -> Iterator[list[str]]:
    """The ``INSERT`` statements into ``table`` that went through SQLAlchemy inside the block (a
    ``before_cursor_execute`` listener): none when ``RowsInsert`` sent its rows to the driver
    itself (psycopg or ``sqlite3``), one when it fell back to the Core ``INSERT``."""
    engine = session.get_bind()
    seen: list[str] = []

    def listener(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.name.upper()} "):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)
