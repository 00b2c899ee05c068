"""licenses.verification_store.Stores: which store a verification gets, by the engine's driver."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from licenses.verification_store import SessionStore, Stores


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
