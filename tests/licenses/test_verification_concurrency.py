"""Uses are counted exactly when windows verify the same authorisation at once (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from common.db import get_db
from licenses.models import Authorisation, UseRecord


@pytest.mark.services
def test_concurrent_verifications_never_over_use_an_authorisation(postgres_url, h):
    """Twelve windows race for an authorisation of three uses: three are answered valid, nine are
    refused as used up, and the count and the use records say exactly that."""
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], max_uses=3).get_json()
    barrier = threading.Barrier(12)
    answers: list[tuple[int, str | None]] = []

    def window() -> None:
        client = h.app.test_client()
        barrier.wait()
        response = client.post("/verify", json={"code": auth["code"]}, headers=h.window)
        answers.append((response.status_code, response.get_json().get("code")))

    threads = [threading.Thread(target=window) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers, key=str) == sorted([(200, None)] * 3 + [(410, "authorisation_used_up")] * 9, key=str)
    with get_db(h.app).session() as session:
        assert session.get(Authorisation, auth["id"]).uses == 3
        outcomes = list(session.scalars(select(UseRecord.outcome).where(UseRecord.authorisation_id == auth["id"])))
    assert sorted(outcomes) == ["accepted"] * 3 + ["refused"] * 9
    holder_view = h.client.get(f"/my/licences/{permit['id']}/uses", headers=h.holder("p-zhang")).get_json()
    assert sorted(u["outcome"] for u in holder_view) == ["accepted"] * 3 + ["refused"] * 9


def test_a_licence_revoked_between_lookup_and_use_is_refused_and_takes_nothing(h):
    """The use is taken only if the licence is still valid when the UPDATE runs; the refusal
    then names the licence's new state (on PostgreSQL and on SQLite alike)."""
    from common.db import get_session
    from licenses import verification
    from licenses.models import Licence

    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], max_uses=2).get_json()
    node = h.app.extensions["licenses"]
    with h.app.test_request_context():
        store = node["stores"].open(get_session)
        lookup = store.lookup

        def lookup_then_revoke(code):
            found = lookup(code)
            with get_db(h.app).session() as other:
                if other.get(Licence, permit["id"]).status == "valid":
                    other.get(Licence, permit["id"]).status = "revoked"
                    other.commit()
            return found

        store.lookup = lookup_then_revoke
        window = verification.Verifier(h.WINDOW_CLIENT, h.WINDOW_CLIENT)
        try:
            with pytest.raises(verification.VerificationRefused) as refused:
                verification.verify_code(store, node["deps"], window, auth["code"])
        finally:
            store.close()
    assert refused.value.code == "licence_revoked"
    with get_db(h.app).session() as session:
        assert session.get(Authorisation, auth["id"]).uses == 0
        records = list(session.execute(select(UseRecord.outcome, UseRecord.reason)
                                       .where(UseRecord.authorisation_id == auth["id"])))
    assert [tuple(r) for r in records] == [("refused", "licence_revoked")]


def _kill_the_pooled_connection(h) -> None:
    """End, on the server, the one connection of online verification's pool (made now if the
    pool has none), and wait until its backend has gone."""
    from sqlalchemy import text

    from common.db import get_session

    store = h.app.extensions["licenses"]["stores"].open(get_session)
    pid = store._pooled.conn.info.backend_pid
    store.close()
    with get_db(h.app).engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar() is True


@pytest.fixture
def sent(postgres_url, monkeypatch):
    """The store's statements and reconnections, in the order they were made."""
    from licenses import verification_store

    calls: list[str] = []
    for name in ("lookup", "take", "take_known", "_reconnect"):
        original = getattr(verification_store.PostgresStore, name)

        def spied(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(verification_store.PostgresStore, name, spied)
    return calls


@pytest.mark.services
def test_a_pooled_connection_the_server_closed_is_replaced_by_the_lookup(postgres_url, h, sent):
    """Online verification's pool does not ping at checkout: a connection the server ended
    meanwhile (restart, idle timeout) fails the lookup of a code never verified, which is sent
    again on a new connection."""
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], max_uses=2).get_json()
    _kill_the_pooled_connection(h)
    response = h.client.post("/verify", json={"code": auth["code"]}, headers=h.window)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["authorisation"]["uses"] == 1
    assert sent == ["lookup", "_reconnect", "take"]


@pytest.mark.services
def test_a_pooled_connection_the_server_closed_is_replaced_before_a_known_codes_statement(postgres_url, h, sent):
    """A code verified lately is verified with one write and no lookup: a connection the server
    ended meanwhile is seen (it has the server's goodbye to read) and replaced before the write
    is sent."""
    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], max_uses=2).get_json()
    assert h.client.post("/verify", json={"code": auth["code"]}, headers=h.window).status_code == 200
    _kill_the_pooled_connection(h)
    sent.clear()
    response = h.client.post("/verify", json={"code": auth["code"]}, headers=h.window)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["authorisation"]["uses"] == 2
    assert sent == ["take_known", "_reconnect"]


def _pool(h):
    return h.app.extensions["licenses"]["stores"].pool()  # built on first use


@pytest.mark.services
def test_after_every_idle_connection_was_closed_the_lookups_retry_gets_a_new_one(postgres_url, h, sent):
    """After a server restart every idle connection of the pool is dead: the retry is made on a
    new connection, not on another of them."""
    from sqlalchemy import text

    permit = h.issue_residence().get_json()
    auth = h.authorise(permit["id"], max_uses=2).get_json()
    pool = _pool(h)
    held = [pool.get() for _ in range(3)]
    pids = [pooled.conn.info.backend_pid for pooled in held]
    for pooled in held:
        pool.put(pooled)
    with get_db(h.app).engine.connect() as conn:
        for pid in pids:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar() is True
    response = h.client.post("/verify", json={"code": auth["code"]}, headers=h.window)
    assert response.status_code == 200, response.get_json()
    assert sent == ["lookup", "_reconnect", "take"]
    assert pool._open == 1 and len(pool._idle) == 1  # the dead ones' places were given back


@pytest.mark.services
def test_a_reconnection_that_fails_gives_the_connections_place_back_once(postgres_url, h):
    """No new connection can be made (the server is still down): the request fails, and closing
    its store afterwards does not give the discarded connection's place back a second time."""
    import psycopg

    from common.db import get_session

    pool = _pool(h)
    store = h.app.extensions["licenses"]["stores"].open(get_session)
    assert pool._open == 1  # the store took its connection when it was opened

    def down():
        raise psycopg.OperationalError("connection refused")

    pool._connect = down
    try:
        with pytest.raises(psycopg.OperationalError):
            store._reconnect()
    finally:
        del pool._connect
    store.close()
    assert pool._open == 0 and pool._idle == []
    again = h.app.extensions["licenses"]["stores"].open(get_session)
    again.close()
    assert pool._open == 1
