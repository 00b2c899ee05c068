"""New transfers in one statement (PostgreSQL): limits checked along the run, all or nothing,
and the writers' use of it; concurrent writers through every path never break a limit.

The limit and all-or-nothing tests run on SQLite too (there the statement-by-statement path
must give the same answers); the rest need PostgreSQL (XSN_TEST_DATABASE_URL).
"""

from __future__ import annotations

import threading
from collections import Counter

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.db import get_db, utcnow
from common.db_driver import PSYCOPG
from common.errors import Problem
from common.group_commit import NOT_WRITTEN, _Waiting
from payment.ledger import one_statement
from payment.ledger.checks import check_ledger
from payment.ledger.group_commit import GroupCommitter, InlineWriter
from payment.ledger.group_write import OneStatementWriter, write_requests
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.transfers import (
    LedgerError,
    TransferSpec,
    balance,
    create_transfers,
)
from tests.conftest import need
from tests.payment.conftest import open_test_accounts
from tests.support.sql_capture import statements_sent


@pytest.fixture
def ledger(session):
    open_test_accounts(session, clearing_holds=100)
    return session


@pytest.fixture
def postgresql(app):
    if get_db(app).engine.dialect.name != "postgresql":
        need("XSN_TEST_DATABASE_URL (PostgreSQL): the one statement is PostgreSQL's")
    return get_db(app)


def _sums(session, account_id):
    session.expire_all()
    return balance(session.get(LedgerAccount, account_id))


def _count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(LedgerTransfer))


def test_a_run_that_dips_past_a_limit_midway_is_refused_at_the_transfer_that_dips(ledger):
    # clearing holds 100: out 150 then in 100 ends within the limit (50 left) but is past it after the first.
    dip = [TransferSpec("out", "clearing", "revenue", 150, "payment"),
           TransferSpec("in", "bank", "clearing", 100, "payment")]
    with pytest.raises(LedgerError) as refused:
        create_transfers(ledger, dip)
    assert refused.value.code == "exceeds_credits" and refused.value.extra["index"] == 0
    assert _count(ledger) == 1 and _sums(ledger, "clearing")["credit_balance"] == 100

    # The same two the other way round never pass the limit.
    create_transfers(ledger, list(reversed(dip)))
    ledger.commit()
    assert _sums(ledger, "clearing")["credit_balance"] == 50
    assert check_ledger(ledger).ok


def test_the_refusal_names_the_first_transfer_past_the_limit(ledger):
    # bank (credits <= debits, 100 debited): credited 60 (within), 50 (past it), then debited 500.
    run = [TransferSpec("r1", "revenue", "bank", 60, "payment"), TransferSpec("r2", "revenue", "bank", 50, "payment"),
           TransferSpec("r3", "bank", "revenue", 500, "payment")]
    with pytest.raises(LedgerError) as refused:
        create_transfers(ledger, run)
    assert refused.value.code == "exceeds_debits" and refused.value.extra["index"] == 1
    create_transfers(ledger, [run[2], run[0], run[1]])
    ledger.commit()
    assert _sums(ledger, "bank")["debits_posted"] == 600 and check_ledger(ledger).ok


def test_a_replay_is_a_replay_even_when_writing_it_again_would_break_a_limit(ledger):
    spend_all = TransferSpec("all", "clearing", "revenue", 100, "payment")
    create_transfers(ledger, [spend_all])
    ledger.commit()
    again = create_transfers(ledger, [spend_all])
    assert [r.created for r in again] == [False]
    assert _count(ledger) == 2 and _sums(ledger, "clearing")["debits_posted"] == 100


def test_a_plainly_new_group_is_one_committed_statement(postgresql, ledger):
    writer = OneStatementWriter(postgresql.engine)
    requests = [[TransferSpec("a", "bank", "clearing", 10, "payment")],
                [TransferSpec("b", "clearing", "revenue", 110, "payment", reference="n1"),
                 TransferSpec("c", "revenue", "clearing", 5, "payment", kind="pending")]]
    outcomes = writer(requests)
    assert [[(r.transfer.id, r.created) for r in outcome] for outcome in outcomes] == [
        [("a", True)], [("b", True), ("c", True)]]
    assert outcomes[1][0].transfer.reference == "n1" and outcomes[1][1].transfer.status == "pending"
    with postgresql.session() as other:  # committed: another connection sees it
        assert _count(other) == 4
        assert _sums(other, "clearing")["credits_posted"] == 110 and _sums(other, "clearing")["credits_pending"] == 5
        assert _sums(other, "clearing")["debits_posted"] == 110
        stored = other.get(LedgerTransfer, "b")
        assert (stored.reference, stored.status, stored.kind) == ("n1", "posted", "single")
        assert stored.created_at == outcomes[1][0].transfer.created_at
        assert check_ledger(other).ok


X = TransferSpec("x", "bank", "clearing", 10, "payment")  # fine on its own


@pytest.mark.parametrize("second", [
    TransferSpec("y", "clearing", "revenue", 111, "payment"),
    TransferSpec("y", "bank", "nowhere", 1, "payment"),
    TransferSpec("y", "bank", "clearing", 0, "payment"),
    TransferSpec("y", "bank", "clearing", 1, "payment", kind="void", pending_id="x"),
], ids=["limit", "missing-account", "malformed", "not-new"])
def test_a_group_that_is_not_plainly_new_writes_nothing_in_one_statement(postgresql, ledger, second):
    assert OneStatementWriter(postgresql.engine)([[X], [second]]) is None
    assert _count(ledger) == 1 and _sums(ledger, "clearing")["credits_posted"] == 100


def test_a_value_the_driver_cannot_send_writes_nothing_and_keeps_no_connection(postgresql, ledger):
    """An unpaired surrogate is refused by psycopg's text dumper (UnicodeEncodeError, not a
    driver error) before anything is sent: the writer answers None (the usual path then says
    why) and closes the connection instead of keeping it in an unknown state."""
    writer = OneStatementWriter(postgresql.engine)
    before = postgresql.engine.pool.checkedout()
    assert writer([[X], [TransferSpec("y\ud800", "bank", "clearing", 1, "payment")]]) is None
    assert writer._idle == [] and postgresql.engine.pool.checkedout() == before
    assert _count(ledger) == 1
    assert [[r.created for r in outcome] for outcome in writer([[X]])] == [[True]]  # the writer goes on


@pytest.mark.parametrize("taken", [
    [TransferSpec("seed", "bank", "clearing", 100, "payment")],
    [TransferSpec("seed", "bank", "clearing", 7, "payment")],
    [TransferSpec("z", "bank", "clearing", 1, "payment"), TransferSpec("seed", "bank", "clearing", 100, "payment")],
], ids=["replay", "conflict", "replay-beside-a-new-transfer"])
def test_the_requests_beside_one_naming_a_taken_id_are_written_without_it(postgresql, ledger, taken):
    writer = OneStatementWriter(postgresql.engine)
    outcomes = writer([[X], taken, [TransferSpec("w", "clearing", "revenue", 50, "payment")]])
    assert outcomes[1] is NOT_WRITTEN  # left to the exact path, which tells a replay from a conflict
    assert [[(r.transfer.id, r.created) for r in outcomes[i]] for i in (0, 2)] == [[("x", True)], [("w", True)]]
    with postgresql.session() as other:  # committed; nothing of the request left alone
        assert _count(other) == 3 and other.get(LedgerTransfer, "z") is None
        assert _sums(other, "clearing")["credits_posted"] == 110 and _sums(other, "clearing")["debits_posted"] == 50
    assert writer([taken]) is None  # every request names a taken id: nothing written


def test_a_group_with_a_replay_and_a_conflict_answers_every_request_as_if_alone(postgresql, ledger):
    create_transfers(ledger, [TransferSpec("old", "bank", "clearing", 5, "payment")])
    ledger.commit()
    committer = GroupCommitter(postgresql.session, write_committed=OneStatementWriter(postgresql.engine))
    group = [_Waiting(items) for items in ([X], [TransferSpec("seed", "bank", "clearing", 100, "payment")],
                                           [TransferSpec("old", "bank", "clearing", 7, "payment")],
                                           [TransferSpec("z", "bank", "clearing", 1, "payment")])]
    committer._commit(group)  # the committer thread's step, on one group as the queue gave it
    answers = [waiting.outcome for waiting in group]
    assert [[(r.transfer.id, r.created) for r in answers[i]] for i in (0, 1, 3)] == [
        [("x", True)], [("seed", False)], [("z", True)]]
    assert isinstance(answers[2], Problem) and answers[2].code == "transfer_exists_with_different_fields"
    with postgresql.session() as other:
        assert _count(other) == 4 and _sums(other, "clearing")["credits_posted"] == 116
        assert check_ledger(other).ok


def test_when_the_re_offer_is_refused_too_the_whole_group_takes_the_session_path(postgresql, ledger):
    seed = TransferSpec("seed", "bank", "clearing", 100, "payment")  # taken: a replay
    missing = TransferSpec("m", "bank", "nowhere", 1, "payment")
    assert OneStatementWriter(postgresql.engine)([[seed], [missing], [X]]) is None  # the re-offer wrote nothing
    assert _count(ledger) == 1

    committer = GroupCommitter(postgresql.session, write_committed=OneStatementWriter(postgresql.engine))
    group = [_Waiting(items) for items in ([seed], [missing], [X])]
    committer._commit(group)
    answers = [waiting.outcome for waiting in group]
    assert [(r.transfer.id, r.created) for r in answers[0]] == [("seed", False)]
    assert isinstance(answers[1], Problem) and answers[1].code == "account_not_found"
    assert [(r.transfer.id, r.created) for r in answers[2]] == [("x", True)]
    with postgresql.session() as other:  # each written once: seed and x, 110 into clearing
        assert _count(other) == 2 and _sums(other, "clearing")["credits_posted"] == 110
        assert check_ledger(other).ok


def test_a_unique_violation_on_the_driver_cursor_is_an_integrity_error(postgresql, ledger, monkeypatch):
    """A twin committed while the statement ran: the driver's UniqueViolation must reach
    create_transfers as SQLAlchemy's IntegrityError, which sends it to the exact path."""
    real_execute = psycopg.Cursor.execute
    raised: list[str] = []

    def execute(cursor, query, params=None, **kwargs):
        if query is one_statement._WRITE_NEW and not raised:
            raised.append(query)
            raise psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")
        return real_execute(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    with pytest.raises(IntegrityError):
        one_statement.write_new(ledger.connection(), [X], now=utcnow())
    ledger.rollback()
    raised.clear()
    results = create_transfers(ledger, [X])  # the one statement fails; the exact path writes it
    ledger.commit()
    assert raised and [(r.transfer.id, r.created) for r in results] == [("x", True)]
    assert _count(ledger) == 2 and _sums(ledger, "clearing")["credits_posted"] == 110


def test_elsewhere_than_postgresql_the_one_statement_declines(app, ledger):
    if get_db(app).engine.dialect.name == "postgresql":
        pytest.skip("SQLite's side of the same test")
    assert OneStatementWriter(get_db(app).engine)([[TransferSpec("x", "bank", "clearing", 10, "payment")]]) is None
    assert _count(ledger) == 1


@pytest.fixture
def one_statements(monkeypatch) -> list[int]:
    """How many transfers each call of the one statement (``one_statement.write_new``) was given."""
    calls: list[int] = []
    real_write_new = one_statement.write_new

    def write_new(connection, specs, **kwargs):
        calls.append(len(specs))
        return real_write_new(connection, specs, **kwargs)

    monkeypatch.setattr(one_statement, "write_new", write_new)
    return calls


def _new_transfers_through_both_writers(app, ledger) -> list[str]:
    """A plainly new transfer through ``create_transfers`` and a group through the
    OneStatementWriter (written on the session path when it declines), checked written once each;
    the INSERTs into ledger_transfers that went through SQLAlchemy meanwhile."""
    with statements_sent(ledger, lambda sql: sql.lstrip().upper().startswith("INSERT INTO LEDGER_TRANSFERS")) as sent:
        assert [r.created for r in create_transfers(ledger, [X])] == [True]
        ledger.commit()
        group = [[TransferSpec("g", "bank", "clearing", 5, "payment")]]
        outcomes = OneStatementWriter(get_db(app).engine)(group)
        if outcomes is None:
            outcomes = write_requests(ledger, group)
            ledger.commit()
    assert [[r.created for r in outcome] for outcome in outcomes] == [[True]]
    assert _count(ledger) == 3 and _sums(ledger, "clearing")["credits_posted"] == 115
    assert check_ledger(ledger).ok
    return sent


def test_the_driver_decides_the_one_statement_path(app, ledger, one_statements):
    """The one statement goes to psycopg's own cursor: on psycopg both writers send it and no
    INSERT of a transfer goes through SQLAlchemy; on SQLite neither sends it."""
    sent = _new_transfers_through_both_writers(app, ledger)
    if get_db(app).engine.dialect.driver == PSYCOPG:
        assert one_statements == [1, 1] and sent == []
    else:
        assert one_statements == [] and len(sent) == 2


def test_postgresql_through_another_driver_takes_the_session_path(app, postgresql, ledger, one_statements,
                                                                  monkeypatch):
    """The database's name is not what decides: PostgreSQL through a driver other than psycopg
    (its name stands in for one here: no second PostgreSQL driver is installed) writes the same
    transfers with SQLAlchemy's statements, its locking reads still PostgreSQL's."""
    monkeypatch.setattr(postgresql.engine.dialect, "driver", "pg8000")
    sent = _new_transfers_through_both_writers(app, ledger)
    assert one_statements == [] and len(sent) == 2


def test_concurrent_writers_never_overdraw_and_write_each_id_once(postgresql, ledger):
    """Sixteen threads spend clearing's 100 fen (debits must not exceed credits) 3 fen at a time
    through every path at once: the group committer with its one statement, the inline writer
    with it, and create_transfers in sessions. Each id is sent by two threads."""
    committer = GroupCommitter(postgresql.session, write_committed=OneStatementWriter(postgresql.engine))
    inline = InlineWriter(postgresql.session, write_committed=OneStatementWriter(postgresql.engine))

    def in_session(specs):
        with postgresql.session() as session:
            results = create_transfers(session, specs)
            session.commit()
            return results

    paths = [committer.submit, inline.submit, in_session]
    answers: Counter = Counter()
    created: Counter = Counter()  # id -> how many answers said "created"
    lock = threading.Lock()

    def client(number: int) -> None:
        submit = paths[number % len(paths)]
        for n in range(12):
            transfer_id = f"spend-{(number // 2) * 100 + n}"  # threads 2k and 2k+1 send the same ids
            try:
                results = submit([TransferSpec(transfer_id, "clearing", "revenue", 3, "payment")])
            except Problem as problem:
                with lock:
                    answers[problem.code] += 1
                continue
            with lock:
                answers["created" if results[0].created else "replayed"] += 1
                if results[0].created:
                    created[transfer_id] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)

    sums = _sums(ledger, "clearing")
    spent = _count(ledger) - 1
    assert spent == 33 and sums["debits_posted"] == 99 and sums["credits_posted"] == 100  # 33 x 3 fen, no more
    assert len(created) == 33 and set(created.values()) == {1}, "an id was created twice"
    assert answers["created"] == 33 and answers["created"] + answers["replayed"] + answers["exceeds_credits"] == 192
    assert set(answers) <= {"created", "replayed", "exceeds_credits"}
    assert check_ledger(ledger).ok
