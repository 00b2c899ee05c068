"""licenses.verification_store.Stores: which store a verification gets, by the engine's driver."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from licenses import verification_store
from licenses.verification_store import PostgresStore, SessionStore, Stores


@pytest.mark.parametrize(("name", "driver"), [("sqlite", "pysqlite"), ("postgresql", "psycopg2"),
                                              ("postgresql", "pg8000")])
def test_only_an_engine_on_psycopg_gets_the_driver_store(name, driver):
    # The PostgreSQL store runs its statements on psycopg connections of its own; on any other
    # driver, PostgreSQL's included, a verification goes through the request's session.
    engine = SimpleNamespace(dialect=SimpleNamespace(name=name, driver=driver))
    stores = Stores(engine, group_takes=False)
    session = object()
    store = stores.open(lambda: session)
    assert isinstance(store, SessionStore) and store.session is session
    stores.dispose()  # no driver pool to close


def test_an_engine_on_psycopg_gets_the_driver_store_on_its_driver_pool(monkeypatch):
    """The one case the test above leaves out: PostgreSQL through psycopg. The store runs on the
    engine's driver pool (of the configured size), and the request's session is never opened."""
    engine = SimpleNamespace(dialect=SimpleNamespace(name="postgresql", driver="psycopg"))
    pool, asked = SimpleNamespace(disposed=False), []

    def engine_driver_pool(of, *, size):
        asked.append((of, size))
        return pool

    pool.dispose = lambda: setattr(pool, "disposed", True)
    monkeypatch.setattr(verification_store, "engine_driver_pool", engine_driver_pool)
    stores = Stores(engine, pool_size=7, group_takes=True)

    def no_session():
        raise AssertionError("the request's session is not opened on psycopg")

    store = stores.open(no_session)
    assert isinstance(store, PostgresStore) and store._pool is pool
    assert store.verified is stores.verified and store._groups is stores.takes
    assert asked == [(engine, 7)]
    stores.dispose()
    assert pool.disposed
