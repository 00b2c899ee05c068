"""Group commit: the transfer requests a process is serving at once share one transaction.

Why: a request that commits on its own waits for its own WAL flush and pays for its own
statements, so a server answering one transfer per request is bound by commit latency and by
per-statement overhead (docs/ARCHITECTURE.md, payment, "Measured"). TigerBeetle batches the
transfers that arrive together; this does the same inside one server process. Each request
thread hands its transfers to :meth:`GroupCommitter.submit` and waits; one committer thread
takes everything queued, writes it with :func:`~payment.ledger.group_write.write_requests`
(each request all-or-nothing, a refusal fails only its own request), commits once, and only
then answers every waiting request. Nothing is acknowledged before its commit returned, and
durability is the database's usual one (no ``synchronous_commit = off``).

No timer holds a group open: while one group commits, the next requests queue up, so groups
grow with load and a lone request waits for nobody (the same shape as PostgreSQL's own group
commit). One committer thread by default: on PostgreSQL a plainly new group is one statement
that commits itself (``write_committed``, :class:`payment.ledger.group_write.OneStatementWriter`),
so the thread is mostly waiting on the database while the next group gathers; a second thread
only split the groups in two (measured: more CPU per transfer, not more transfers).

When the group's transaction fails (a database error, not a request's refusal), it is rolled
back and each of its requests is retried alone in its own transaction, so one bad moment
costs throughput, never an answer. If a commit's outcome is unknown (the connection dropped
during COMMIT), the retry finds the transfers already written and answers them as replays
(``created: false``) — the same as a client's own retry with the same ids.

:class:`InlineWriter` has the same ``submit`` for a caller that is never concurrent (a sync
gunicorn worker, a CLI): it writes in the caller's thread, one transaction per request.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog
from sqlalchemy.orm import Session

from common.errors import Problem, ServiceUnavailable
from payment.ledger.group_write import Outcome, write_requests
from payment.ledger.transfers import TransferResult, TransferSpec, create_transfers

log = structlog.get_logger("xsn.payment.ledger")

# A context manager giving a fresh session, rolled back unless committed (common.db.Database.session).
SessionFactory = Callable[[], contextlib.AbstractContextManager[Session]]
GroupWriter = Callable[[Session, Sequence[Sequence[TransferSpec]]], list[Outcome]]
# Tried first, outside any session: writes and commits the whole group, or writes nothing and
# answers None (group_write.OneStatementWriter).
CommittedWriter = Callable[[Sequence[Sequence[TransferSpec]]], list[Outcome] | None]
OneWriter = Callable[[Session, Sequence[TransferSpec]], list[TransferResult]]

COMMITTERS = 1
MAX_GROUP_TRANSFERS = 2000  # keeps one group's statements well inside PostgreSQL's 65,535 parameters
WAIT_SECONDS = 30.0


class LedgerWriter(Protocol):
    def submit(self, specs: Sequence[TransferSpec]) -> list[TransferResult]: ...


class LedgerTimeout(ServiceUnavailable):
    code, title = "ledger_timeout", "The ledger did not answer in time"


def write_alone(sessions: SessionFactory, specs: Sequence[TransferSpec], write_one: OneWriter = create_transfers
                ) -> Outcome:
    """One request in its own transaction: its results, or its refusal.

    :raise SQLAlchemyError: a database error (nothing of this request was written, or, if
        COMMIT itself failed, possibly all of it: a retry with the same ids tells).
    """
    with sessions() as session:
        try:
            results = write_one(session, specs)
        except Problem as problem:
            return problem
        session.commit()
        return results


class InlineWriter:
    """Writes each request in the caller's thread, in its own transaction."""

    def __init__(self, sessions: SessionFactory, write_one: OneWriter = create_transfers,
                 write_committed: CommittedWriter | None = None) -> None:
        self.sessions, self.write_one, self.write_committed = sessions, write_one, write_committed

    def submit(self, specs: Sequence[TransferSpec]) -> list[TransferResult]:
        """:raise Problem: the request's refusal. :raise SQLAlchemyError: a database error."""
        if self.write_committed is not None:
            outcomes = self.write_committed([specs])
            if outcomes is not None:
                return _unwrap(outcomes[0])
        return _unwrap(write_alone(self.sessions, specs, self.write_one))


class _Waiting:
    __slots__ = ("specs", "done", "outcome")

    def __init__(self, specs: Sequence[TransferSpec]) -> None:
        self.specs = specs
        self.done = threading.Event()
        self.outcome: Outcome | BaseException | None = None

    def answer(self, outcome: Outcome | BaseException) -> None:
        self.outcome = outcome
        self.done.set()


class GroupCommitter:
    """Coalesces the concurrent ``submit`` calls of one process into shared transactions.

    ``write_group`` and ``write_one`` are the ledger's by default; tests pass their own to
    watch the grouping without a database. ``write_committed``, when given, is offered each
    group first; the session path runs only when it wrote nothing.
    """

    def __init__(self, sessions: SessionFactory, *, write_group: GroupWriter = write_requests,
                 write_one: OneWriter = create_transfers, write_committed: CommittedWriter | None = None,
                 committers: int = COMMITTERS, max_transfers: int = MAX_GROUP_TRANSFERS,
                 wait_seconds: float = WAIT_SECONDS) -> None:
        self.sessions, self.write_group, self.write_one = sessions, write_group, write_one
        self.write_committed = write_committed
        self.committers, self.max_transfers, self.wait_seconds = committers, max_transfers, wait_seconds
        self.groups = 0  # committed groups, and the requests they carried (for tests and logs)
        self.requests = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()

    def submit(self, specs: Sequence[TransferSpec]) -> list[TransferResult]:
        """Write ``specs`` all-or-nothing with whatever else is waiting; return once committed.

        :raise Problem: the request's own refusal (as ``create_transfers`` raises it).
        :raise LedgerTimeout: no answer within ``wait_seconds`` (the transfers may still be
            written: a retry with the same ids is answered as a replay).
        :raise SQLAlchemyError: the request failed alone too, on a database error.
        """
        waiting = _Waiting(list(specs))
        self._ensure_running()
        self._queue.put(waiting)
        if not waiting.done.wait(self.wait_seconds):
            raise LedgerTimeout("the ledger did not answer in time; retry with the same transfer ids")
        return _unwrap(waiting.outcome)  # type: ignore[arg-type] - set before done

    def _ensure_running(self) -> None:
        if self._pid == os.getpid() and len(self._threads) == self.committers and \
                all(thread.is_alive() for thread in self._threads):
            return
        with self._lock:
            if self._pid != os.getpid():  # forked (a gunicorn worker): the parent's threads are not ours
                self._queue, self._threads, self._pid = queue.SimpleQueue(), [], os.getpid()
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            while len(self._threads) < self.committers:
                thread = threading.Thread(target=self._run, name=f"ledger-group-commit-{len(self._threads)}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            count = len(group[0].specs)
            while count < self.max_transfers:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(waiting)
                count += len(waiting.specs)
            try:
                self._commit(group)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                for waiting in group:
                    if not waiting.done.is_set():
                        waiting.answer(exc)
                if not isinstance(exc, Exception):
                    raise

    def _commit(self, group: list[_Waiting]) -> None:
        outcomes = self.write_committed([waiting.specs for waiting in group]) if self.write_committed else None
        if outcomes is not None:
            self._answer(group, outcomes)
            return
        try:
            with self.sessions() as session:
                outcomes = self.write_group(session, [waiting.specs for waiting in group])
                session.commit()
        except Exception as exc:  # a database error: nothing of the group is acknowledged yet
            log.warning("ledger_group_failed", requests=len(group), error=f"{type(exc).__name__}: {exc}"[:300])
            for waiting in group:
                try:
                    waiting.answer(write_alone(self.sessions, waiting.specs, self.write_one))
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


def _unwrap(outcome: Outcome | BaseException) -> list[TransferResult]:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
