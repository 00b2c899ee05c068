"""Group commit: the write requests a process is serving at once share one transaction.

Why: a request that commits on its own waits for its own WAL flush and pays for its own
statements (and, when every write takes one lock, such as a log head, the others wait through
that flush), so a server answering one write per request is bound by commit latency and by
per-statement overhead. Each request thread hands its items to :meth:`GroupCommitter.submit`
and waits; a committer thread takes everything queued, writes it with the service's
``write_group`` (each request all-or-nothing, a refusal fails only its own request), commits
once, and only then answers every waiting request. Nothing is acknowledged before the commit
that holds it returned, and durability is the database's usual one.

No timer holds a group open: while one group commits, the next requests queue up, so groups
grow with load and a lone request waits for nobody (the same shape as PostgreSQL's own group
commit). A few committer threads, each with its own connection, keep the next group being
written while the last one waits for its flush; each takes whatever is queued when it is free
(a service whose group is one self-committing statement does better with one: payment).

``write_committed``, when given, is offered each group first, outside any session: it writes
and commits the group in one go (one statement that commits itself) and answers each request's
outcome, or :data:`NOT_WRITTEN` for a request it left alone (or None for the whole group: it
wrote nothing); the requests it left take the session path as usual (payment's
``OneStatementWriter``). The ones it wrote are answered at once: their commit has returned. A
sentinel, not None, marks a request left alone, so a request whose results are None is not
written a second time.

When the group's transaction fails (a database error, not a request's refusal), it is rolled
back and each of its requests is retried alone in its own transaction with ``write_one``, so
one bad moment (or one request that breaks a constraint the group shares) costs throughput,
never an answer. If a commit's outcome is unknown (the connection dropped during COMMIT), the
service's ``write_one`` must recognise what was already written (idempotent ids or keys).

:class:`InlineWriter` has the same ``submit`` for a caller that is never concurrent (a sync
gunicorn worker, a CLI): it writes in the caller's thread, one transaction per request.
Used by the payment ledger (transfers) and the seal node (signatures and their log entries).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.orm import Session

from common.errors import Problem

Item = TypeVar("Item")
Result = TypeVar("Result")

# A context manager giving a fresh session, rolled back unless committed (common.db.Database.session).
SessionFactory = Callable[[], contextlib.AbstractContextManager[Session]]
# A request's outcome: its results, or the Problem that refused it (the other requests go on).
Outcome = Any
# A CommittedWriter's answer for a request it did not write (left to the session path).
NOT_WRITTEN: Any = object()
# Tried first, outside any session: writes and commits the group; one outcome per request
# (NOT_WRITTEN for a request it did not write), or None when it wrote nothing.
CommittedWriter = Callable[[Sequence[Sequence[Any]]], "list[Outcome] | None"]

log = structlog.get_logger("xsn.group_commit")
COMMITTERS = 2
MAX_GROUP_ITEMS = 2000  # keeps one group's statements well inside PostgreSQL's 65,535 parameters
WAIT_SECONDS = 30.0


def write_alone(sessions: SessionFactory, items: Sequence[Item],
                write_one: Callable[[Session, Sequence[Item]], Result]) -> Result | Problem:
    """One request in its own transaction: its results, or its refusal.

    :raise SQLAlchemyError: a database error (nothing of this request was written, or, if
        COMMIT itself failed, possibly all of it: a retry with the same ids tells).
    """
    with sessions() as session:
        try:
            results = write_one(session, items)
        except Problem as problem:
            return problem
        session.commit()
        return results


class InlineWriter(Generic[Item, Result]):
    """Writes each request in the caller's thread, in its own transaction."""

    def __init__(self, sessions: SessionFactory, write_one: Callable[[Session, Sequence[Item]], Result],
                 write_committed: CommittedWriter | None = None) -> None:
        self.sessions, self.write_one, self.write_committed = sessions, write_one, write_committed

    def submit(self, items: Sequence[Item]) -> Result:
        """:raise Problem: the request's refusal. :raise SQLAlchemyError: a database error."""
        if self.write_committed is not None:
            outcomes = _offer(self.write_committed, [items], log, "group_commit_failed")
            if outcomes is not None and outcomes[0] is not NOT_WRITTEN:
                return _unwrap(outcomes[0])
        return _unwrap(write_alone(self.sessions, items, self.write_one))


class _Waiting:
    """One request waiting for its outcome.

    The wake-up is a bare lock, taken here and released by the committer, not a
    ``threading.Event``: an Event's wait and set run Python's ``Condition`` (a new lock per
    wait, a waiter list, ``notify_all``) on every request (measured: 14-20 against 22-24 µs of
    CPU per submit, 32 threads). Only the committer thread that took the request answers it,
    so ``answered`` needs no lock of its own.
    """

    __slots__ = ("items", "outcome", "answered", "_ready")

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items
        self.outcome: Any = None
        self.answered = False
        self._ready = threading.Lock()
        self._ready.acquire()

    def answer(self, outcome: Any) -> None:
        self.outcome = outcome
        self.answered = True
        self._ready.release()

    def wait(self, seconds: float) -> bool:
        """Whether the answer came within ``seconds``."""
        return self._ready.acquire(timeout=seconds)


class GroupCommitter(Generic[Item, Result]):
    """Coalesces the concurrent ``submit`` calls of one process into shared transactions.

    ``write_group(session, [items of each request])`` writes every request in the caller's
    transaction and returns one outcome per request (its results or its refusal, a Problem);
    it raises on a database error. It may commit that transaction itself (the seal node sends
    the ``COMMIT`` in the round trip of its last statements, ``common.merkle_log.driver.pipelined``),
    as long as it has returned only once the commit did; the committer's own commit then finds
    nothing left to do. ``write_one(session, items)`` writes one request (raising
    its refusal). ``timeout()`` builds the error a caller gets after ``wait_seconds``.
    ``write_committed``, when given, is offered each group first (see the module's doc).
    """

    def __init__(self, sessions: SessionFactory, *,
                 write_group: Callable[[Session, Sequence[Sequence[Item]]], list[Outcome]],
                 write_one: Callable[[Session, Sequence[Item]], Result], timeout: Callable[[], Exception],
                 write_committed: CommittedWriter | None = None, committers: int = COMMITTERS,
                 max_items: int = MAX_GROUP_ITEMS, wait_seconds: float = WAIT_SECONDS, name: str = "group-commit",
                 logger: Any = None, failed_event: str = "group_commit_failed") -> None:
        self.sessions, self.write_group, self.write_one = sessions, write_group, write_one
        self.write_committed = write_committed
        self.timeout, self.name, self.failed_event = timeout, name, failed_event
        self.committers, self.max_items, self.wait_seconds = committers, max_items, wait_seconds
        self.log = logger or log
        self.groups = 0  # committed groups, and the requests they carried (for tests and logs)
        self.requests = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()

    def submit(self, items: Sequence[Item]) -> Result:
        """Write ``items`` all-or-nothing with whatever else is waiting; return once committed.

        :raise Problem: the request's own refusal (as ``write_one`` raises it).
        :raise: ``timeout()`` when no answer came within ``wait_seconds`` (the items may still
            be written: a retry with the same ids or keys is answered as a replay).
        :raise SQLAlchemyError: the request failed alone too, on a database error.
        """
        waiting = _Waiting(list(items))
        self._ensure_running()
        self._queue.put(waiting)
        if not waiting.wait(self.wait_seconds):
            raise self.timeout()
        return _unwrap(waiting.outcome)

    def _ensure_running(self) -> None:
        if self._pid == os.getpid() and len(self._threads) == self.committers and \
                all(thread.is_alive() for thread in self._threads):
            return
        with self._lock:
            if self._pid != os.getpid():  # forked (a gunicorn worker): the parent's threads are not ours
                self._queue, self._threads, self._pid = queue.SimpleQueue(), [], os.getpid()
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            while len(self._threads) < self.committers:
                thread = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            count = len(group[0].items)
            while count < self.max_items:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(waiting)
                count += len(waiting.items)
            try:
                self._commit(group)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                for waiting in group:
                    if not waiting.answered:
                        waiting.answer(exc)
                if not isinstance(exc, Exception):
                    raise

    def _commit(self, group: list[_Waiting]) -> None:
        if self.write_committed is not None:
            outcomes = _offer(self.write_committed, [waiting.items for waiting in group], self.log,
                              self.failed_event)
            if outcomes is not None:
                done, answers, left = [], [], []
                for waiting, outcome in zip(group, outcomes, strict=True):
                    if outcome is NOT_WRITTEN:
                        left.append(waiting)
                    else:
                        done.append(waiting)
                        answers.append(outcome)
                if done:
                    self._answer(done, answers)
                group = left
                if not group:
                    return
        try:
            with self.sessions() as session:
                outcomes = self.write_group(session, [waiting.items for waiting in group])
                session.commit()
        except Exception as exc:  # a database error: nothing of the group is acknowledged yet
            self.log.warning(self.failed_event, requests=len(group), error_type=type(exc).__name__)
            for waiting in group:
                try:
                    waiting.answer(write_alone(self.sessions, waiting.items, self.write_one))
                except Exception as alone:
                    waiting.answer(alone)
            return
        self._answer(group, outcomes)

    def _answer(self, group: list[_Waiting], outcomes: list[Outcome]) -> None:
        with self._lock:
            self.groups += 1
            self.requests += len(group)
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.answer(outcome)


def _offer(write_committed: CommittedWriter, groups: list, log: Any, event: str) -> list | None:
    """``write_committed(groups)``, or None when it raised: one request's value the driver cannot
    send (or any other error) must not be every request's answer, so the group takes the session
    path (one transaction, then request by request if that fails; what the one statement may have
    committed before failing is recognised there: ids are idempotent)."""
    try:
        return write_committed(groups)
    except Exception as exc:
        log.warning(event, requests=len(groups), error_type=type(exc).__name__)
        return None


def _unwrap(outcome: Any) -> Any:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
