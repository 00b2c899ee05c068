"""Many independent transfer requests written together, each all-or-nothing.

This is what lets one commit (one WAL flush) carry the transfers of many HTTP requests
(:mod:`payment.ledger.group_commit` gathers them) without changing what any one request is
told. Each request's outcome is exactly what :func:`~payment.ledger.transfers.create_transfers`
would have given it alone, as if the requests of the group had run one after another.

Up to three steps:

* :class:`OneStatementWriter` offers the whole group to one PostgreSQL statement that is its
  own transaction (:mod:`payment.ledger.one_statement` on an autocommit connection). When every
  request is plainly new and the whole run keeps every limit, which is the usual case, that one
  statement writes and commits the group: a run of requests that keeps every limit in order,
  with no id taken, is exactly what the request-by-request path accepts.
* When the statement found ids already taken (a client's retry: a replay or a conflict), it
  re-offers the requests that reuse none of those ids, without the others, to the same
  statement once more; that one statement writes and commits them all or none of them, and the
  requests naming a taken id (and, if the re-offer wrote nothing, the others too) go on to the
  next step. Measured before this step existed: a group of ten with one replay in it cost the
  committer 1.14-1.33 ms of CPU and 3.8 statements per request, 51-66 ms per group, against
  0.05 ms, 0.1 and 7-9 ms for a plainly new group, all on the one committer every request of
  the process waits behind; so one retrying client slowed every other.
* Every request the statement did not write (the whole group when it refused for another
  reason: a limit, a missing account, a request not plainly new) goes to
  :func:`write_requests`, which runs each through ``create_transfers`` in its own savepoint of
  one transaction (a plainly new request is again one statement there; a replay, a conflict, a
  post or void goes the exact path): each gets the precise answer and code, and a refusal rolls
  back only its own savepoint. A request is written by exactly one of these steps.

A database error (a lost connection, a deadlock) is not a request's fault: it propagates, and
the caller rolls the whole transaction back and retries the requests
(:class:`payment.ledger.group_commit.GroupCommitter` retries each one alone).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from common.db import utcnow
from common.db_driver import PSYCOPG
from common.errors import Problem
from common.group_commit import NOT_WRITTEN, Outcome
from payment.ledger import one_statement
from payment.ledger.transfers import TransferSpec, create_transfers, hold_accounts

log = structlog.get_logger("xsn.payment.ledger")


def write_requests(session: Session, requests: Sequence[Sequence[TransferSpec]]) -> list[Outcome]:
    """Write every request's transfers in the session's transaction, one after another, each in
    its own savepoint; commit is the caller's. A refused request leaves nothing behind and does
    not affect the others.

    Every request's accounts are locked first, together, in the one order: each request locks
    its own in order, but one after another they would not be (the first request's accounts held
    while the next one's are taken), and a writer taking both sets in order could deadlock with
    the group (tests/payment/test_lock_order.py).

    :raise SQLAlchemyError: a database error; the transaction must be rolled back (no request
        was written).
    """
    if len(requests) > 1:  # one request locks its own in order
        hold_accounts(session, {aid for specs in requests for spec in specs
                                for aid in (spec.debit_account_id, spec.credit_account_id)})
    outcomes: list[Outcome] = []
    for specs in requests:
        try:
            outcomes.append(create_transfers(session, specs))  # all-or-nothing in its own savepoint
        except Problem as problem:
            outcomes.append(problem)
    return outcomes


class OneStatementWriter:
    """Writes a group in one PostgreSQL statement that commits on its own: every request, or,
    when some name ids already taken, every other request in a second such statement, or nothing.

    It keeps its own idle autocommit connections of ``engine`` (as many as were ever in use at
    once: one per committer thread): no BEGIN or COMMIT round trip, and no pool checkout with
    its pre-ping round trip per group (measured: ≈ 0.1 ms of CPU per group and the committer's
    throughput halved). A connection that fails is dropped; the usual path, with a pre-pinged
    session, then takes the group. They are closed by :meth:`close` or when the writer goes.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self.close = weakref.finalize(self, _close_all, self._idle, self._lock)

    def __call__(self, requests: Sequence[Sequence[TransferSpec]]) -> list[Outcome] | None:
        """Every request's results, committed, and ``NOT_WRITTEN`` for each request naming an id
        already taken when the others were written without it; None when nothing was written (a
        request is not plainly new, breaks a limit or names a missing account; every request
        names a taken id; not psycopg, whose own cursor the statement goes to; a database error,
        after which the usual path finds out what, if anything, was written).
        """
        specs = [spec for request in requests for spec in request]
        if self.engine.dialect.driver != PSYCOPG or not all(requests) or not one_statement.plainly_new(specs):
            return None
        outcome = self._write(requests, specs)
        if not isinstance(outcome, one_statement.Refusal):
            return outcome
        if not outcome.taken:
            return None
        taken = set(outcome.taken)
        untouched = [not any(spec.id in taken for spec in request) for request in requests]
        if not any(untouched):
            return None
        written = self._write([request for request, keep in zip(requests, untouched, strict=True) if keep])
        if written is None or isinstance(written, one_statement.Refusal):
            return None
        results = iter(written)
        return [next(results) if keep else NOT_WRITTEN for keep in untouched]

    def _write(self, requests: Sequence[Sequence[TransferSpec]], specs: Sequence[TransferSpec] | None = None,
               ) -> list[Outcome] | one_statement.Refusal | None:
        """The one statement over ``requests`` (``specs``: their transfers in order, when the
        caller has them already): their results, why it wrote nothing, or None (a malformed
        transfer or a database error)."""
        if specs is None:
            specs = [spec for request in requests for spec in request]
        connection = self._take()
        try:
            outcome = one_statement.write_new(connection, specs, now=utcnow())
        except Problem:
            self._give(connection)
            return None  # a malformed transfer: the usual path says which request and why
        except Exception as exc:  # a database error, or a value the driver cannot send at all
            # (UnicodeEncodeError for an unpaired surrogate is not the driver's error class):
            # the connection's state is unknown either way, so it is closed, not given back
            log.warning("ledger_one_statement_failed", requests=len(requests), error_type=type(exc).__name__)
            connection.invalidate()
            connection.close()
            return None
        self._give(connection)
        if isinstance(outcome, one_statement.Refusal):
            return outcome
        outcomes: list[Outcome] = []
        start = 0
        for request in requests:
            outcomes.append(outcome[start:start + len(request)])
            start += len(request)
        return outcomes

    def _take(self) -> Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _give(self, connection: Connection) -> None:
        with self._lock:
            self._idle.append(connection)


def _close_all(idle: list[Connection], lock: threading.Lock) -> None:
    with lock:
        connections, idle[:] = list(idle), []
    for connection in connections:
        connection.detach()  # closed for good, not handed to a pool the engine may have disposed of
        connection.close()
