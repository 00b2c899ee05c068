"""The grouped signature writer (:mod:`seal.signature_writer`): concurrent signers share a commit
and the log head's lock, each answered with its own committed signature and log entry.

Runs on SQLite in ``make test`` and on PostgreSQL under XSN_TEST_DATABASE_URL.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from common.crypto.gm import sm3
from common.db import get_db
from seal import signing
from seal.log import tree
from seal.log.appends import SIGNATURE_LOG
from seal.log.models import LogEntry
from seal.models import Signature
from seal.signature_writer import group_writer
from tests.seal.domain import LICENSES
from tests.seal.log.test_concurrency import check_log
from tests.support.concurrency import in_threads
from tests.support.suite import wait_for


def _sign_concurrently(app, kek, seal_id, writer, keys: list[str | None], digests: list[bytes]) -> list:
    """``signing.sign`` from one thread per request, each on its own session."""

    def one(position: int):
        with get_db(app).session() as session:
            return signing.sign(session, kek, seal_id, actor=LICENSES, digest=digests[position],
                                idempotency_key=keys[position], log=SIGNATURE_LOG, writer=writer)

    return in_threads(one, len(keys))


def _held_head(app):
    """A session holding the log head's lock (as a signer inside its append would)."""
    holder = get_db(app).sessionmaker()
    tree.lock_head(holder)
    return holder


def _wait_taken(writer) -> None:
    """Until the committer has taken the one request submitted (and waits on the head lock)."""
    wait_for(lambda: not writer._queue.qsize() and writer._threads, 30, "the committer's take", interval=0.01)
    time.sleep(0.2)  # the committer thread, just started, takes it from the queue


def _wait_queued(writer, count: int) -> None:
    wait_for(lambda: writer._queue.qsize() >= count, 30, "the requests' queueing", interval=0.01)


def test_signers_queued_behind_the_head_share_one_commit(app, kek, seal):
    writer = group_writer(get_db(app).session, SIGNATURE_LOG)
    holder = _held_head(app)
    count = 6
    digests = [sm3(f"文书 {n}".encode()) for n in range(count)]
    done: list = []
    first = threading.Thread(target=lambda: done.extend(_sign_concurrently(app, kek, seal.id, writer, [None],
                                                                           digests[:1])))
    first.start()
    _wait_taken(writer)  # the committer took the first one: it waits on the lock
    rest = threading.Thread(target=lambda: done.extend(_sign_concurrently(app, kek, seal.id, writer,
                                                                          [None] * (count - 1), digests[1:])))
    rest.start()
    _wait_queued(writer, count - 1)
    holder.rollback()
    holder.close()
    first.join(60)
    rest.join(60)

    assert all(isinstance(result, signing.SignResult) for result in done), done
    assert (writer.groups, writer.requests) == (2, count)  # the first alone, then the five queued behind it
    with get_db(app).session() as session:
        rows = {row.id: row for row in session.scalars(select(Signature))}
        entries = {entry.leaf_index: entry for entry in session.scalars(select(LogEntry))}
    assert sorted(result.signature.log_index for result in done) == list(range(count))
    for result in done:  # each answer is its committed row, whose entry commits to its DER
        row = rows[result.signature.id]
        assert row.log_index == result.signature.log_index
        assert entries[row.log_index].signature_digest == row.signature_digest == sm3(row.signature_der).hex()
        assert row.document_digest == result.signature.document_digest
    check_log(app, count)


def test_an_idempotency_race_inside_a_group_answers_one_signature_twice(app, kek, seal):
    writer = group_writer(get_db(app).session, SIGNATURE_LOG)
    holder = _held_head(app)
    warm = threading.Thread(target=_sign_concurrently, args=(app, kek, seal.id, writer, ["warm"], [sm3(b"w")]))
    warm.start()
    _wait_taken(writer)
    # Three requests queue behind it: two with the same key (both read "no such key" before
    # either was written), and an unrelated one that must not pay for their conflict.
    keys, digests = ["twin", "twin", "other"], [DIGEST_A, DIGEST_A, sm3(b"other")]
    results: list = []
    queued = threading.Thread(target=lambda: results.extend(_sign_concurrently(app, kek, seal.id, writer, keys,
                                                                              digests)))
    queued.start()
    _wait_queued(writer, 3)
    holder.rollback()
    holder.close()
    warm.join(60)
    queued.join(60)

    assert all(isinstance(result, signing.SignResult) for result in results), results
    twins = results[:2]
    assert twins[0].signature.id == twins[1].signature.id
    assert sorted(result.replayed for result in twins) == [False, True]
    assert not results[2].replayed
    with get_db(app).session() as session:
        assert len(session.scalars(select(Signature)).all()) == 3
    check_log(app, 3)  # the failed group left no entry and no gap


DIGEST_A = sm3("合同 A".encode())


def test_a_threaded_server_signs_through_the_group_writer(app, client, seal_id, signer_headers, serve_app):
    import requests

    url = serve_app(app)
    answers: list = []

    def post(n: int) -> None:
        answers.append(requests.post(f"{url}/seals/{seal_id}/sign", json={"digest": sm3(str(n).encode()).hex()},
                                     headers={**signer_headers, "Idempotency-Key": f"k{n}"}, timeout=30))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [answer.status_code for answer in answers] == [201] * 8
    writer = app.extensions["seal_signature_writer"]
    assert writer.requests == 8 and 1 <= writer.groups <= 8
    replay = requests.post(f"{url}/seals/{seal_id}/sign", json={"digest": sm3(b"0").hex()},
                           headers={**signer_headers, "Idempotency-Key": "k0"}, timeout=30)
    first = next(answer.json() for answer in answers if answer.json()["document_digest"] == sm3(b"0").hex())
    assert replay.status_code == 200 and replay.json() == first
    assert sorted(answer.json()["log_index"] for answer in answers) == list(range(8))
    check_log(app, 8)


def test_postgresql_stores_the_der_without_trying_to_compress_it(make_app, postgres_url):
    """seal_0008: the DER (mostly the seal's PNG) is stored EXTERNAL, not EXTENDED (pglz)."""
    from sqlalchemy import text

    app = make_app("seal")
    with get_db(app).engine.connect() as conn:
        storage = conn.execute(text("SELECT attstorage FROM pg_attribute WHERE attrelid = 'signatures'::regclass "
                                    "AND attname = 'signature_der'")).scalar_one()
    assert storage == "e"


def test_postgresql_writes_through_the_driver_and_reports_a_taken_key_as_sqlalchemy_does(app, kek, seal,
                                                                                          postgres_url):
    """common.merkle_log.driver: on PostgreSQL the read, the head update and the inserts run as
    fixed text on psycopg (SQLAlchemy's cursor execution sees none of them), the signature and its
    entry are committed as before, and a unique violation is still an ``IntegrityError``."""
    import pytest
    from sqlalchemy import event as sa_event
    from sqlalchemy.exc import IntegrityError

    from seal.signature_writer import PendingSignature, write_signatures

    statements: list[str] = []
    engine = get_db(app).engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    sa_event.listen(engine, "before_cursor_execute", listener)
    try:
        with get_db(app).session() as session:
            result = signing.sign(session, kek, seal.id, actor=LICENSES, digest=sm3(b"driver"), idempotency_key="k1",
                                  log=SIGNATURE_LOG)
    finally:
        sa_event.remove(engine, "before_cursor_execute", listener)
    assert not [s for s in statements if "signatures" in s or "log_entries" in s or "log_head" in s], statements
    with get_db(app).session() as session:
        stored = session.get(Signature, result.signature.id)
        assert stored.log_index == 0 and stored.idempotency_key == "k1"
        assert session.scalars(select(LogEntry.signature_digest)).all() == [stored.signature_digest]
        row = {column.key: getattr(stored, column.key) for column in Signature.__table__.c}
        row.update(id="another", signature_digest="00" * 32)  # the same idempotency key
        event = {"type": "sign", "time": "2026-12-07T00:00:00Z"}
        with pytest.raises(IntegrityError):
            write_signatures(session, SIGNATURE_LOG, [PendingSignature(row, event)])
    check_log(app, 1)


def test_postgresql_reads_without_a_ping_and_retries_on_a_connection_the_server_closed(app, kek, seal,
                                                                                      postgres_url):
    """common.db_driver.engine_driver_pool: the grouped path's read runs on a driver pool of its own
    (autocommit, no pre-ping); a pooled connection the server closed meanwhile fails the read
    once, which is tried again on a new connection, and the signature goes through."""
    from sqlalchemy import text

    from common.db_driver import engine_driver_pool
    from common.merkle_log.driver import READ_POOL_SIZE

    engine = get_db(app).engine
    readers = engine_driver_pool(engine, size=READ_POOL_SIZE)
    assert engine_driver_pool(engine, size=READ_POOL_SIZE) is readers
    writer = group_writer(get_db(app).session, SIGNATURE_LOG)
    first = _sign_concurrently(app, kek, seal.id, writer, ["r1"], [sm3(b"read 1")])
    assert first[0].signature.log_index == 0
    pooled = readers.get()  # the connection the read used, idle in the pool again
    pid = pooled.conn.info.backend_pid
    readers.put(pooled)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    second = _sign_concurrently(app, kek, seal.id, writer, ["r2"], [sm3(b"read 2")])
    assert second[0].signature.log_index == 1, second
    engine.dispose()  # the read pool goes with its engine
    assert readers.idle_count == 0 and engine_driver_pool(engine, size=READ_POOL_SIZE) is not readers
    check_log(app, 2)


def test_postgresql_reads_on_a_new_connection_after_every_backend_was_closed(app, kek, seal, postgres_url):
    """After a restart or failover every idle connection of the read's pool is dead, and the pool
    hands them out in turn: the read's one retry must not take the next of them. Several reader
    connections idle, every backend of the test's database but the test's own terminated, then
    one signature: it goes through (the broken read disposes the pool, the retry opens a new one)."""
    from sqlalchemy import text

    from common.db_driver import engine_driver_pool
    from common.merkle_log.driver import READ_POOL_SIZE

    engine = get_db(app).engine
    readers = engine_driver_pool(engine, size=READ_POOL_SIZE)
    writer = group_writer(get_db(app).session, SIGNATURE_LOG)
    first = _sign_concurrently(app, kek, seal.id, writer, ["t1"], [sm3(b"terminated 1")])
    assert first[0].signature.log_index == 0
    held = [readers.get() for _ in range(3)]  # three connections open at once, then idle
    for pooled in held:
        readers.put(pooled)
    assert readers.idle_count >= 3
    with engine.connect() as conn:
        terminated = conn.execute(text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    assert terminated >= 3
    second = _sign_concurrently(app, kek, seal.id, writer, ["t2"], [sm3(b"terminated 2")])
    assert second[0].signature.log_index == 1, second
    check_log(app, 2)


def test_postgresql_inserts_a_batch_column_by_column_with_every_value_kept(app, kek, seal, postgres_url):
    """common.merkle_log.driver.RowsInsert: a batch's signatures, entries and nodes go as one
    ``INSERT ... SELECT FROM unnest(arrays)`` per table (binary arrays); every column reads back
    as it was given, the always-NULL ones (``note``, ``ses_signature``) and the ~20 KB DER too."""
    from seal.log.appends import _INSERT_ENTRY, _INSERT_NODES
    from seal.signature_writer import _INSERT_SIGNATURE

    assert all("unnest(%b::" in insert.sql for insert in (_INSERT_ENTRY, _INSERT_NODES, _INSERT_SIGNATURE))
    items = [(sm3(f"rows {n}".encode()), f"info-{n}") for n in range(5)]
    with get_db(app).session() as session:
        made = signing.sign_batch(session, kek, seal.id, actor=LICENSES, items=items, idempotency_key="rows",
                                  log=SIGNATURE_LOG).signatures
    with get_db(app).session() as session:
        for expected in made:
            stored = session.get(Signature, expected.id)
            for column in Signature.__table__.c:
                assert getattr(stored, column.key) == getattr(expected, column.key), column.key
        entries = session.scalars(select(LogEntry).order_by(LogEntry.leaf_index)).all()
        assert [entry.signature_digest for entry in entries] == [row.signature_digest for row in made]
        assert [entry.ses_signature for entry in entries] == [None] * 5
    check_log(app, 5)
