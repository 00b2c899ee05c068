"""common.db_driver.DriverPool: psycopg connections without SQLAlchemy's pool (online verification's)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import create_engine, text

from common.db_driver import DriverPool, PoolTimeout
from tests.support.suite import wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def pool(postgres_url):
    pool = DriverPool(postgres_url, size=2, timeout=0.5)
    yield pool
    pool.dispose()


def _backend(pooled) -> int:
    pooled.cursor.execute("SELECT pg_backend_pid()")
    return pooled.cursor.fetchone()[0]


def test_a_connection_given_back_is_handed_out_again_in_autocommit_with_its_cursor(pool):
    first = pool.get()
    backend, cursor = _backend(first), first.cursor
    assert first.conn.autocommit
    pool.put(first)
    again = pool.get()
    assert _backend(again) == backend and again.cursor is cursor
    pool.put(again)


def _blocked_waiter(pool) -> tuple[threading.Thread, list]:
    """A thread blocked in ``pool.get()`` (seen waiting on the pool's condition), and what it got."""
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(pool.get()))
    waiter.start()
    wait_for(lambda: pool._free._waiters, 2, "the waiter's wait on the pool", interval=0.005)  # CPython's Condition
    assert waiter.is_alive() and got == []
    return waiter, got


def test_no_more_than_size_connections_and_a_waiter_gets_the_next_one_given_back(pool):
    held = [pool.get(), pool.get()]
    started = time.monotonic()
    with pytest.raises(PoolTimeout):
        pool.get()
    assert time.monotonic() - started >= 0.4
    waiter, got = _blocked_waiter(pool)
    given_back = held.pop()
    pool.put(given_back)
    waiter.join(2)
    assert got == [given_back]
    for pooled in (*held, *got):
        pool.put(pooled)


def test_a_waiter_is_woken_by_a_discard_and_gets_a_new_connection(pool):
    held = [pool.get(), pool.get()]
    waiter, got = _blocked_waiter(pool)
    pool.discard(held.pop())
    waiter.join(2)
    assert len(got) == 1 and not got[0].conn.closed and pool._open == 2
    for pooled in (*held, *got):
        pool.put(pooled)


def test_a_connection_that_cannot_be_made_gives_its_place_back(pool):
    def down():
        raise psycopg.OperationalError("connection refused")

    pool._connect = down
    for _ in range(3):  # more failures than the pool's size: no place is lost
        with pytest.raises(psycopg.OperationalError):
            pool.get()
    del pool._connect
    assert pool._open == 0
    both = [pool.get(), pool.get()]
    assert pool._open == 2
    for pooled in both:
        pool.put(pooled)


def test_a_connection_left_in_a_transaction_or_broken_is_closed_not_reused(pool, postgres_url):
    pooled = pool.get()
    pooled.cursor.execute("BEGIN")
    backend = _backend(pooled)
    pool.put(pooled)
    assert pooled.conn.closed
    other = pool.get()
    assert _backend(other) != backend
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:  # the server ends it: its next statement fails
            conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": _backend(other)})
    finally:
        engine.dispose()
    with pytest.raises(psycopg.OperationalError):
        _backend(other)
    assert other.conn.broken
    pool.put(other)
    fresh = pool.get()
    assert not fresh.conn.broken and _backend(fresh)
    pool.put(fresh)


def test_replace_gives_a_new_connection_and_keeps_the_count(pool):
    first, second = pool.get(), pool.get()
    backend = _backend(first)
    first = pool.replace(first)
    assert first.conn is not None and _backend(first) != backend
    with pytest.raises(PoolTimeout):
        pool.get()
    pool.put(first)
    pool.put(second)


def test_replace_closes_the_idle_connections_and_a_failed_one_gives_its_place_back_once(pool):
    idle, held = pool.get(), pool.get()
    pool.put(idle)
    fresh = pool.replace(held)
    assert idle.conn.closed and held.conn.closed and pool._open == 1 and pool._idle == []

    def down():
        raise psycopg.OperationalError("connection refused")

    pool._connect = down
    with pytest.raises(psycopg.OperationalError):
        pool.replace(fresh)
    del pool._connect
    pool.put(fresh)  # what a caller still holding it does on the way out
    pool.discard(fresh)
    assert pool._open == 0 and pool._idle == []


def test_a_connection_in_use_when_the_pool_is_disposed_is_closed_when_put_back(pool):
    kept, idle = pool.get(), pool.get()
    pool.put(idle)
    pool.dispose()
    assert idle.conn.closed and pool._open == 1
    pool.put(kept)
    assert kept.conn.closed and pool._open == 0 and pool._idle == []
    fresh = pool.get()  # the pool still works after a dispose
    pool.put(fresh)
    assert pool._idle == [fresh] and not fresh.conn.closed


def test_an_engines_pool_is_retired_with_it_and_closes_what_comes_back(postgres_url):
    """common.db_driver.engine_driver_pool: one pool per engine and process, of one size; an
    Engine.dispose retires it (a connection in use then is closed when given back, not pooled)
    and the next call builds a new one."""
    from common.db_driver import engine_driver_pool

    engine = create_engine(postgres_url)
    readers = engine_driver_pool(engine, size=2)
    assert engine_driver_pool(engine, size=2) is readers
    with pytest.raises(ValueError, match="holds 2 connections"):
        engine_driver_pool(engine, size=3)
    held, idle = readers.get(), readers.get()
    try:
        readers.put(idle)
        engine.dispose()
        assert idle.conn.closed
        readers.put(held)
        assert held.conn.closed and readers.idle_count == 0 and readers._open == 0
        again = engine_driver_pool(engine, size=2)
        assert again is not readers
        pooled = again.get()
        again.put(pooled)
        assert again.idle_count == 1
        engine.dispose()
        assert pooled.conn.closed
    finally:  # nothing left open for a later test's garbage collection to warn about
        for pooled_ in (held, idle):
            pooled_.conn.close()
        engine.dispose()


def test_a_full_pool_is_a_503_problem(pool):
    taken = [pool.get(), pool.get()]
    try:
        with pytest.raises(PoolTimeout) as raised:
            pool.get()
        assert (raised.value.status, raised.value.code) == (503, "database_busy")
    finally:
        for pooled in taken:
            pool.put(pooled)


def test_only_postgresql():
    with pytest.raises(ValueError, match="PostgreSQL"):
        DriverPool("sqlite:///x.db", size=1)
