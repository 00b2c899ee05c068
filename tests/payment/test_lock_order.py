"""The ledger's lock order on PostgreSQL: every writer takes its accounts' row locks in the one
order, all of them before it writes: the exact path (one transfer at a time: posts, voids,
replays) before it claims an id, as the one statement does, and a group of requests written in
one transaction before its first request. Otherwise each pair below deadlocked: one of them was
killed after ``deadlock_timeout``."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import IntegrityError

from common.db import get_db
from payment.ledger import group_write, transfers
from payment.ledger.transfers import TransferSpec, create_transfers
from tests.conftest import need
from tests.payment.conftest import open_test_accounts
from tests.payment.lock_waits import exact_meanwhile, in_thread, statement_meanwhile


@pytest.fixture
def postgresql(app, session):
    if get_db(app).engine.dialect.name != "postgresql":
        need("XSN_TEST_DATABASE_URL (PostgreSQL): row locks are PostgreSQL's")
    open_test_accounts(session)
    create_transfers(session, [TransferSpec("q", "bank", "clearing", 10, "payment", kind="pending")])
    session.commit()
    return get_db(app)


def _paused(original, pause_after, stop: threading.Event, go_on: threading.Event):
    """``original`` that, for a call ``pause_after`` picks, sets ``stop`` and waits for ``go_on``."""

    def pausing(session, specs):
        result = original(session, specs)
        if pause_after(specs):
            stop.set()
            assert go_on.wait(30)
        return result

    return pausing


def _committed(db, write):
    with db.session() as session:
        result = write(session)
        session.commit()
        return result


@pytest.mark.parametrize("kind", ["post", "void"])
def test_a_post_and_the_one_statement_naming_its_id_do_not_deadlock(postgresql, monkeypatch, kind):
    """The post (or void) ``x`` stops after claiming its id (before resolving its pending transfer); the
    one statement writing a new ``x`` between the same accounts starts meanwhile. Had the post
    claimed ``x`` before locking its accounts, the statement would hold the accounts while
    waiting for ``x``, the post wait for the accounts. Locked first, the statement waits for the
    accounts, then finds ``x`` taken: an IntegrityError (its group then takes the session path,
    which answers a conflict)."""
    claimed, go_on = threading.Event(), threading.Event()
    # _resolve_pending runs right after the post's INSERT: the pause point
    monkeypatch.setattr(transfers, "_resolve_pending",
                        _paused(transfers._resolve_pending, lambda spec: True, claimed, go_on))
    post, posted = in_thread(lambda: _committed(postgresql, lambda session: create_transfers(
        session, [TransferSpec("x", "bank", "clearing", 10, "payment", kind=kind, pending_id="q")])))
    assert claimed.wait(30)
    statement = statement_meanwhile(postgresql, [TransferSpec("x", "bank", "clearing", 5, "payment")], post, go_on)
    assert [r.created for r in posted["value"]] == [True], posted
    assert isinstance(statement, IntegrityError), statement
    assert "pk_ledger_transfers" in str(statement)


def test_a_group_and_the_one_statement_do_not_deadlock(postgresql, monkeypatch):
    """A group of two requests written in one transaction (the committer's session path) stops
    after its first request (revenue -> clearing); the one statement moving bank -> revenue
    starts meanwhile. Had the group locked each request's accounts as it came to it, it would
    hold revenue and wait for bank (its second request, bank -> clearing), the statement hold
    bank and wait for revenue."""
    group, written, go_on = _group_paused_after_its_first_request(postgresql, monkeypatch)
    statement = statement_meanwhile(postgresql, [TransferSpec("s", "bank", "revenue", 1, "payment")], group, go_on)
    assert [[r.created for r in outcome] for outcome in written["value"]] == [[True], [True]], written
    assert [r.created for r in statement] == [True], statement


def test_a_group_and_the_exact_path_do_not_deadlock(postgresql, monkeypatch):
    """As above, against the exact path: the post ``y`` of a pending bank -> revenue transfer
    locks bank, then revenue, which the group's first request holds."""
    _committed(postgresql, lambda session: create_transfers(
        session, [TransferSpec("p", "bank", "revenue", 5, "payment", kind="pending")]))
    group, written, go_on = _group_paused_after_its_first_request(postgresql, monkeypatch)
    post = exact_meanwhile(postgresql, [TransferSpec("y", "bank", "revenue", 5, "payment", kind="post",
                                                      pending_id="p")], group, go_on)
    assert [[r.created for r in outcome] for outcome in written["value"]] == [[True], [True]], written
    assert [r.created for r in post] == [True], post


def _group_paused_after_its_first_request(postgresql, monkeypatch):
    """A group of two requests (revenue -> clearing, then bank -> clearing) written in one
    transaction on the session path, in a thread, held after its first request until ``go_on``
    is set: ``(thread, its outcome holder, go_on)``."""
    first_done, go_on = threading.Event(), threading.Event()
    monkeypatch.setattr(group_write, "create_transfers",
                        _paused(group_write.create_transfers, lambda specs: specs[0].id == "g1", first_done, go_on))
    group, written = in_thread(lambda: _committed(postgresql, lambda session: group_write.write_requests(
        session, [[TransferSpec("g1", "revenue", "clearing", 1, "payment")],
                  [TransferSpec("g2", "bank", "clearing", 1, "payment")]])))
    assert first_done.wait(30)
    return group, written, go_on
