"""Group commit of ledger transfers: many requests, one transaction, each its own answer.

Runs on SQLite in ``make test`` and on PostgreSQL under ``.ci/run`` (XSN_TEST_DATABASE_URL).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from common.db import Database, get_db
from common.errors import NotFound, Problem
from common.ops.launcher import gunicorn_argv
from payment.ledger.checks import check_ledger
from payment.ledger.group_commit import GroupCommitter, InlineWriter
from payment.ledger.group_write import write_requests
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.transfers import (
    AccountSpec,
    LedgerError,
    TransferConflict,
    TransferSpec,
    open_account,
)
from payment.processes import GUNICORN_THREADS
from tests.conftest import TEST_KEK
from tests.payment.conftest import open_test_accounts
from tests.support.concurrency import in_threads
from tests.support.proc_stat import children
from tests.support.suite import free_port, process, wait_for, wait_ready


@pytest.fixture
def ledger(session):
    open_test_accounts(session, clearing_holds=200)
    return session


def _sums(session, account_id):
    session.expire_all()
    account = session.get(LedgerAccount, account_id)
    return account.debits_posted, account.credits_posted, account.debits_pending, account.credits_pending


def _ids(session):
    session.expire_all()
    return set(session.scalars(select(LedgerTransfer.id)))


# Each request of one group, and what it alone would have been told, in whatever order they
# run (the twin of "a": one of the two is created, the other replayed).
MIXED = [
    ([TransferSpec("a", "bank", "clearing", 100, "payment")], "created"),
    ([TransferSpec("b", "clearing", "revenue", 500, "payment")], "exceeds_credits"),  # 300 in at most
    ([TransferSpec("c", "clearing", "revenue", 60, "payment")], "created"),
    ([TransferSpec("seed", "bank", "clearing", 200, "payment")], "replayed"),
    ([TransferSpec("seed", "bank", "clearing", 201, "payment")], "transfer_exists_with_different_fields"),
    ([TransferSpec("d", "bank", "nowhere", 5, "payment")], "account_not_found"),
    ([TransferSpec("a", "bank", "clearing", 100, "payment")], "replayed"),  # a twin of the first, same group
    ([TransferSpec("e", "bank", "clearing", 0, "payment")], "invalid_amount"),
    ([TransferSpec("f", "bank", "clearing", 10, "payment"),
      TransferSpec("g", "clearing", "revenue", 10_000, "payment")], "exceeds_credits"),  # f must not stay
    ([TransferSpec("h", "revenue", "clearing", 7, "payment", kind="pending")], "created"),
]


def _check(outcome, expected: str) -> None:
    if expected in ("created", "replayed"):
        assert not isinstance(outcome, BaseException), outcome
        assert [result.created for result in outcome] == [expected == "created"] * len(outcome)
    else:
        assert isinstance(outcome, Problem) and outcome.code == expected, outcome


def _check_all(outcomes, *, in_order: bool) -> None:
    twins = (0, 6)
    for index, (outcome, (_specs, expected)) in enumerate(zip(outcomes, MIXED, strict=True)):
        if in_order or index not in twins:
            _check(outcome, expected)
    if not in_order:
        assert sorted(outcomes[i][0].created for i in twins) == [False, True]


def _check_written(session) -> None:
    assert _ids(session) == {"seed", "a", "c", "h"}
    assert _sums(session, "bank") == (300, 0, 0, 0)
    assert _sums(session, "clearing") == (60, 300, 0, 7)
    assert _sums(session, "revenue") == (0, 60, 7, 0)
    assert check_ledger(session).ok


def test_one_transaction_answers_each_request_as_if_alone(ledger):
    outcomes = write_requests(ledger, [specs for specs, _ in MIXED])
    ledger.commit()
    _check_all(outcomes, in_order=True)
    assert outcomes[8].extra["index"] == 1  # the index inside its own request
    _check_written(ledger)


def test_a_database_error_rolls_the_whole_group_back(ledger, monkeypatch):
    import payment.ledger.group_write as group_write

    create = group_write.create_transfers

    def lost_after_writing(session, specs):  # the second request is written, then the connection fails
        results = create(session, specs)
        if specs[0].id == "b":
            assert _ids(ledger) == {"seed", "a", "b"}
            raise OperationalError("UPDATE", {}, Exception("connection lost"))
        return results

    monkeypatch.setattr(group_write, "create_transfers", lost_after_writing)
    with pytest.raises(OperationalError):
        write_requests(ledger, [[TransferSpec("a", "bank", "clearing", 100, "payment")],
                                [TransferSpec("b", "clearing", "revenue", 50, "payment")]])
    ledger.rollback()
    assert _ids(ledger) == {"seed"}


def _concurrently(submit, requests):
    """Submit every request from its own thread at once; returns each one's outcome."""
    barrier = threading.Barrier(len(requests))

    def run(index: int):
        barrier.wait()
        return submit(requests[index])  # an exception raised is the answer under test

    return in_threads(run, len(requests))


class HeldFirstGroup:
    """A group writer that holds its first group until the test lets it go, so the requests
    that arrive meanwhile must queue up and travel together in the second group."""

    def __init__(self) -> None:
        self.entered, self.release, self.groups = threading.Event(), threading.Event(), []

    def __call__(self, session, requests):
        self.groups.append(len(requests))
        if len(self.groups) == 1:
            self.entered.set()
            self.release.wait(30)
        return write_requests(session, requests)


def _queued(committer: GroupCommitter, count: int) -> None:
    wait_for(lambda: committer._queue.qsize() >= count, 30, "the requests' queueing", interval=0.01)


def test_concurrent_requests_share_a_commit_and_each_gets_its_own_answer(app, ledger):
    writer = HeldFirstGroup()
    committer = GroupCommitter(get_db(app).session, write_group=writer, committers=1)
    first = threading.Thread(target=committer.submit, args=([TransferSpec("z", "bank", "revenue", 1, "payment")],))
    first.start()
    assert writer.entered.wait(30)
    results: list = []
    waiting = threading.Thread(target=lambda: results.extend(_concurrently(committer.submit,
                                                                           [s for s, _ in MIXED])))
    waiting.start()
    _queued(committer, len(MIXED))
    assert results == []  # nobody is answered while their group has not committed
    writer.release.set()
    first.join(30)
    waiting.join(60)
    assert writer.groups == [1, len(MIXED)] and committer.groups == 2
    _check_all(results, in_order=False)
    ledger.expire_all()
    assert _ids(ledger) == {"seed", "a", "c", "h", "z"}
    assert check_ledger(ledger).ok


def test_when_the_group_fails_each_request_is_retried_alone(app, ledger):
    calls = []

    def failing_group(session, requests):
        calls.append(len(requests))
        write_requests(session, requests)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    committer = GroupCommitter(get_db(app).session, write_group=failing_group, committers=1)
    outcomes = _concurrently(committer.submit, [s for s, _ in MIXED])
    assert calls and sum(calls) == len(MIXED)
    assert committer.groups == 0  # no group committed: every answer came from a request alone
    _check_all(outcomes, in_order=False)
    _check_written(ledger)


def test_a_commit_that_fails_acknowledges_nothing_and_the_retry_writes_once(app, ledger):
    """The group's COMMIT fails after everything was written: nobody was answered from the
    group, and the one-by-one retry writes each transfer exactly once."""
    database = get_db(app)
    failures = [1]

    class FlakySession:
        def __init__(self):
            self.inner = database.session()

        def __enter__(self):
            self.session = self.inner.__enter__()
            original = self.session.commit

            def commit():
                if failures:
                    failures.pop()
                    self.session.rollback()
                    raise OperationalError("COMMIT", {}, Exception("could not fsync"))
                original()

            self.session.commit = commit
            return self.session

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    committer = GroupCommitter(FlakySession, committers=1)
    specs = [[TransferSpec(f"k{i}", "bank", "clearing", 10, "payment")] for i in range(6)]
    outcomes = _concurrently(committer.submit, specs)
    assert all(not isinstance(o, BaseException) and o[0].created for o in outcomes), outcomes
    ledger.expire_all()
    assert ledger.scalar(select(func.count()).select_from(LedgerTransfer)) == 7
    assert _sums(ledger, "bank")[0] == 200 + 60
    assert check_ledger(ledger).ok


def test_the_inline_writer_gives_the_same_answers(app, ledger):
    writer = InlineWriter(get_db(app).session)
    outcomes = []
    for specs, _expected in MIXED:
        try:
            outcomes.append(writer.submit(specs))
        except Problem as problem:
            outcomes.append(problem)
    _check_all(outcomes, in_order=True)
    _check_written(ledger)


def test_a_caller_waits_no_longer_than_its_limit(app, ledger):
    writer = HeldFirstGroup()
    committer = GroupCommitter(get_db(app).session, write_group=writer, committers=1, wait_seconds=0.2)
    with pytest.raises(Problem) as raised:
        committer.submit([TransferSpec("slow", "bank", "clearing", 5, "payment")])
    assert raised.value.status == 503 and raised.value.code == "ledger_timeout"
    writer.release.set()
    wait_for(lambda: committer.groups, 30, "the slow group's commit", interval=0.01)
    # Written after all: the client's retry with the same id is answered as a replay.
    assert not committer.submit([TransferSpec("slow", "bank", "clearing", 5, "payment")])[0].created


def test_refusals_keep_their_types(ledger):
    outcomes = write_requests(ledger, [[TransferSpec("seed", "bank", "clearing", 201, "payment")],
                                       [TransferSpec("d", "bank", "nowhere", 5, "payment")],
                                       [TransferSpec("e", "bank", "clearing", -1, "payment")]])
    assert isinstance(outcomes[0], TransferConflict) and outcomes[0].status == 409
    assert isinstance(outcomes[1], NotFound) and outcomes[1].status == 404
    assert isinstance(outcomes[2], LedgerError) and outcomes[2].status == 422


# Over HTTP: the status and code each request of MIXED gets (the schema refuses amount 0 first).
HTTP = {"created": (201, None), "replayed": (201, None), "exceeds_credits": (422, "exceeds_credits"),
        "transfer_exists_with_different_fields": (409, "transfer_exists_with_different_fields"),
        "account_not_found": (404, "account_not_found"), "invalid_amount": (422, "validation_failed")}


def _body(specs) -> dict:
    return {"transfers": [{key: value for key, value in vars(spec).items() if value is not None} for spec in specs]}


def test_a_threaded_server_answers_each_request_through_the_committer(app, tokens, ledger):
    admin = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")

    def post(specs):
        client = app.test_client()  # one per thread, as a server has one per connection
        return client.post("/ledger/transfers", json=_body(specs), headers=admin,
                           environ_overrides={"wsgi.multithread": True})

    answers = _concurrently(post, [specs for specs, _ in MIXED])
    for index, (answer, (_specs, expected)) in enumerate(zip(answers, MIXED, strict=True)):
        status, code = HTTP[expected]
        assert answer.status_code == status, (index, answer.get_json())
        if code:
            assert answer.content_type == "application/problem+json" and answer.get_json()["code"] == code
    assert sorted(answers[i].get_json()["transfers"][0]["created"] for i in (0, 6)) == [False, True]
    assert answers[8].get_json()["index"] == 1
    # Through the committer, not inline (on PostgreSQL two groups may race for the twin "a": the
    # loser's group is retried one by one, so not every request is counted in a committed group).
    assert app.extensions["payment_ledger_committer"].groups >= 1 and "payment_ledger_inline" not in app.extensions
    _check_written(ledger)


@pytest.fixture
def served_ledger(databases, tokens, tmp_path):
    """The payment app under gunicorn as payment/processes.py serves it, one worker, on a fresh
    database with 20 accounts; yields (base URL, master pid, database URL)."""
    url = databases.fresh("payment")
    database = Database(url)
    with database.session() as session:
        for i in range(20):
            open_account(session, AccountSpec(f"s{i}", "suspense", f"s{i}"))
        session.commit()
    database.dispose()
    port = free_port()
    env = dict(os.environ, XSN_VAR_DIR=str(tmp_path), XSN_KEK=TEST_KEK, XSN_LOG_LEVEL="WARNING",
               XSN_PAYMENT_DATABASE_URL=url, XSN_OAUTH_JWKS_URL=tokens.write_jwks(tmp_path / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_RATELIMIT_ENABLED="false")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = gunicorn_argv("payment:create_app()", port, 1, "xsn-payment-kill-test", threads=GUNICORN_THREADS)
    base = f"http://127.0.0.1:{port}"
    with process(argv, env=env, stop_wait_s=15) as server:
        wait_ready(f"{base}/livez", 60, server, interval=0.1)
        yield base, server.pid, url


def test_killing_the_worker_mid_group_loses_nothing_it_acknowledged(served_ledger, tokens):
    """SIGKILL the worker while eight clients post transfers: every transfer it answered 201 is
    in the ledger, the rest are either there or not at all, and the clients' retries (the same
    ids) end with each transfer written exactly once and the ledger balanced."""
    base, master, url = served_ledger
    headers = tokens.bearer(sub="fin", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance")
    attempted: dict[str, dict] = {}
    acknowledged: set[str] = set()
    stop = time.monotonic() + 2.5

    def client(number: int) -> None:
        http = requests.Session()
        for n in itertools.count():
            if time.monotonic() > stop:
                return
            spec = {"id": f"k{number}-{n}", "debit_account_id": f"s{(number + n) % 20}",
                    "credit_account_id": f"s{(number + 2 * n + 1) % 20}", "amount": 1 + n, "code": "adjustment"}
            if spec["debit_account_id"] == spec["credit_account_id"]:
                continue
            attempted[spec["id"]] = spec
            try:
                answer = http.post(f"{base}/ledger/transfers", json={"transfers": [spec]}, headers=headers, timeout=10)
            except requests.RequestException:
                continue  # in flight when the worker died: not acknowledged
            if answer.status_code == 201:
                acknowledged.add(spec["id"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.8)
    before_kill = len(acknowledged)
    for worker in children(master):
        os.kill(worker, signal.SIGKILL)
    for thread in threads:
        thread.join(60)
    wait_ready(f"{base}/livez", 60, interval=0.1)
    assert before_kill > 0 and len(acknowledged) > before_kill  # answered before the kill and after the restart

    for transfer_id, spec in attempted.items():  # the clients retry everything with the same ids
        answer = requests.post(f"{base}/ledger/transfers", json={"transfers": [spec]}, headers=headers, timeout=30)
        assert answer.status_code == 201, answer.text
        if transfer_id in acknowledged:
            assert answer.json()["transfers"][0]["created"] is False, f"{transfer_id} was acknowledged but lost"

    database = Database(url)
    try:
        with database.session() as session:
            assert set(session.scalars(select(LedgerTransfer.id))) == set(attempted)
            report = check_ledger(session)
            assert report.ok, report.findings
            debits = dict(session.execute(select(LedgerAccount.id, LedgerAccount.debits_posted)).all())
    finally:
        database.dispose()
    expected = {f"s{i}": 0 for i in range(20)}
    for spec in attempted.values():
        expected[spec["debit_account_id"]] += spec["amount"]
    assert debits == expected  # each written exactly once
