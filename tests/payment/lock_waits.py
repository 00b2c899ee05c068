"""What the ledger's lock tests on PostgreSQL are made of: two writers, one held part-way and the
other started meanwhile and let go once it waits on a row lock (``test_lock_order``,
``test_stale_orders``), and the statements a session sends, with the session path's locking
read (``test_ledger_locking``, ``test_ledger``)."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from sqlalchemy import event, text

from common.db import utcnow
from payment.ledger import one_statement
from payment.ledger.transfers import create_transfers
from tests.support.concurrency import in_thread
from tests.support.suite import wait_for

# The session path's locking read of the accounts (``transfers._lock_accounts``,
# ``transfers.hold_accounts``), as sent: the one statement's own lock reads differently.
LOCKING_READ = 'ORDER BY ledger_accounts.id COLLATE "C" FOR NO KEY UPDATE'


def statement_meanwhile(db, specs, paused: threading.Thread, go_on: threading.Event):
    """The one statement writing ``specs`` on a connection of its own while ``paused`` waits for
    ``go_on``, which is set once the statement waits on a row lock; its results, or what it raised."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        pid = connection.connection.driver_connection.info.backend_pid
        thread, outcome = in_thread(lambda: one_statement.write_new(connection, specs, now=utcnow()))
        release_once_waiting(db, pid, thread, paused, go_on)
    return outcome["value"]


def exact_meanwhile(db, specs, paused: threading.Thread, go_on: threading.Event):
    """As :func:`statement_meanwhile`, for ``create_transfers`` in a session of its own, committed."""
    with db.session() as session:
        pid = session.connection().connection.driver_connection.info.backend_pid
        thread, outcome = in_thread(lambda: (create_transfers(session, specs), session.commit())[0])
        release_once_waiting(db, pid, thread, paused, go_on)
    return outcome["value"]


def release_once_waiting(db, pid: int, thread: threading.Thread, paused: threading.Thread,
                          go_on: threading.Event) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
        wait_for(lambda: watcher.scalar(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                                        {"pid": pid}) == "Lock", 30, "the writer's wait on a row lock", interval=0.01)
    go_on.set()
    for waiting in (paused, thread):
        waiting.join(30)
    assert not (paused.is_alive() or thread.is_alive())


@contextmanager
def sent_statements(session):
    """The statements ``session``'s engine sends meanwhile (rolled back afterwards)."""
    engine, sent = session.get_bind(), []

    def catch(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", catch)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", catch)
        session.rollback()
