"""Two units of work that decide on the same row, made to overlap where it matters: the first is
held just after its check passed, the second runs meanwhile (``paused_after_check``)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.support.concurrency import in_thread


def paused_after_check(monkeypatch, owner, name: str, first, second, engine: Engine) -> tuple:
    """``first()`` runs until its first call of ``owner.name`` (the write its check allowed) and is
    held there while ``second()`` runs; it goes on once ``second`` has finished or waits on a lock.
    Their results (or what each raised), in that order.

    A lock ``second`` waits for is seen on PostgreSQL (``pg_stat_activity``); on SQLite a writer
    waiting for the write lock shows nothing, so ``second`` has a second to finish before
    ``first`` goes on (enough on a loaded machine for a ``second`` that is not held).
    """
    reached, go_on = threading.Event(), threading.Event()
    original = getattr(owner, name)

    def held(*args, **kwargs):
        if not reached.is_set():  # only the first caller: ``second`` starts once it is here
            reached.set()
            go_on.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    first_thread, first_outcome = in_thread(first)
    assert reached.wait(30), f"the first unit of work never reached {name}"
    second_thread, second_outcome = in_thread(second)
    _until_done_or_waiting(engine, second_thread)
    go_on.set()
    for thread in (first_thread, second_thread):
        thread.join(30)
    assert not (first_thread.is_alive() or second_thread.is_alive())
    return first_outcome["value"], second_outcome["value"]


def _until_done_or_waiting(engine: Engine, thread: threading.Thread) -> None:
    if engine.dialect.name != "postgresql":
        thread.join(1.0)
        return
    deadline = time.monotonic() + 30
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
        while thread.is_alive() and not watcher.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")):
            assert time.monotonic() < deadline, "the second unit of work neither finished nor waited"
            time.sleep(0.01)
