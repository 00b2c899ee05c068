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
    pid = store._connection().conn.info.backend_pid
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
    assert pool._open == 0  # a store takes its connection with its first statement
    store._connection()
    assert pool._open == 1

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
    again._connection()
    again.close()
    assert pool._open == 1


@pytest.mark.services
def test_a_known_codes_take_carried_by_another_verifications_statement_takes_no_connection(
        postgres_url, h, monkeypatch):
    """A verification of a known code whose take goes in another one's group statement never
    checks out a connection of the pool: only a statement's sender (a group's leader, a lookup,
    a refusal's record) does. Three known codes: C's statement is held while B's and A's takes
    queue; B leads the next group and its statement carries A's."""
    from common.db_driver import DriverPool
    from licenses import verification_store

    codes = {}
    for name in "ABC":
        permit = h.issue_residence().get_json()
        codes[name] = h.authorise(permit["id"], max_uses=5).get_json()["code"]
        assert h.client.post("/verify", json={"code": codes[name]}, headers=h.window).status_code == 200
    takes = h.app.extensions["licenses"]["stores"].takes
    takes.groups = takes.items = 0
    held, release = threading.Event(), threading.Event()
    write_known = verification_store.PostgresStore.write_known

    def held_write(store, items):
        if any(item[0] == codes["C"] for item in items):
            held.set()
            assert release.wait(30)
        return write_known(store, items)

    monkeypatch.setattr(takes, "_write", held_write)  # what the groups were given when built
    checkouts: list[int] = []
    get = DriverPool.get
    monkeypatch.setattr(DriverPool, "get", lambda pool: checkouts.append(threading.get_ident()) or get(pool))
    answers: dict[str, int] = {}
    idents: dict[str, int] = {}

    def window(name: str) -> None:
        idents[name] = threading.get_ident()
        answer = h.app.test_client().post("/verify", json={"code": codes[name]}, headers=h.window)
        answers[name] = answer.status_code, answer.get_json()

    def queued(count: int) -> bool:
        for _ in range(3000):
            if len(takes._queue) == count:
                return True
            threading.Event().wait(0.01)
        return False

    threads = {name: threading.Thread(target=window, args=(name,)) for name in "CBA"}
    threads["C"].start()
    assert held.wait(30), answers
    threads["B"].start()
    assert queued(1)
    threads["A"].start()
    assert queued(2)
    release.set()
    for thread in threads.values():
        thread.join(60)
    assert {name: answer[0] for name, answer in answers.items()} == {"A": 200, "B": 200, "C": 200}
    assert takes.groups == 2 and takes.items == 3
    assert idents["A"] not in checkouts and idents["B"] in checkouts and idents["C"] in checkouts
    with get_db(h.app).session() as session:
        for name in "ABC":
            assert session.scalar(select(Authorisation.uses).where(Authorisation.code == codes[name])) == 2
