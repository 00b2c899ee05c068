"""Many independent transfer requests written in one database transaction, each all-or-nothing.

This is what lets one commit (one WAL flush) carry the transfers of many HTTP requests
(:mod:`payment.ledger.group_commit` gathers them) without changing what any one request is
told. Each request's outcome is exactly what :func:`~payment.ledger.transfers.create_transfers`
would have given it alone, as if the requests of the group had run one after another:

* The fast path takes the requests that are plainly new single or pending transfers on
  existing accounts and within every limit: one SELECT of the ids already taken, one
  ``SELECT ... FOR UPDATE`` of all their accounts (in id order, so groups in other processes
  cannot deadlock with it), the limits checked in Python request by request on the locked
  sums (a request that would break one is not applied to the running sums), one INSERT of all
  their rows, one UPDATE per account.
* Every other request (a replay, an id reused with other fields, a post or void, a missing
  account, a malformed transfer, one that breaks a limit) then runs through ``create_transfers``
  itself, inside its own savepoint, after the fast ones: it gets the precise answer and code
  that path gives, and its refusal rolls back only its own savepoint.

Before all that, :class:`OneStatementWriter` offers the whole group to one PostgreSQL statement
that is its own transaction (:mod:`payment.ledger.one_statement` on an autocommit connection):
when every request is plainly new and the whole run keeps every limit, which is the usual case,
that one statement writes and commits the group; otherwise it writes nothing and the group
goes the way above. The requests' answers are the same either way: a run of requests that keeps
every limit in order, with no id taken, is exactly what the request-by-request path accepts.

A database error (a lost connection, a deadlock, an id taken by another process between the
SELECT and the INSERT) is not a request's fault: it propagates, and the caller rolls the whole
transaction back and retries the requests (:class:`payment.ledger.group_commit.GroupCommitter`
retries each one alone).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Sequence

import structlog
from sqlalchemy import Connection, Engine, bindparam, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from common.db import utcnow
from common.errors import Problem
from payment.ledger import one_statement
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.rules import TransferRecord
from payment.ledger.transfers import (
    ADD_FROM_ARRAYS_SQL,
    SUMS,
    TransferResult,
    TransferSpec,
    add_to_balances,
    balance_changes,
    check_shape,
    create_transfers,
    limit_broken,
    transfer_row,
)

# What each request gets: its results, or the refusal it alone would have got.
Outcome = list[TransferResult] | Problem

log = structlog.get_logger("xsn.payment.ledger")

_TRANSFERS, _ACCOUNTS = LedgerTransfer.__table__, LedgerAccount.__table__
# Built once: constructing a statement costs about as much CPU as running it.
_TAKEN_IDS = select(_TRANSFERS.c.id).where(_TRANSFERS.c.id.in_(bindparam("ids", expanding=True)))
_LOCK_ACCOUNTS = (select(_ACCOUNTS.c.id, _ACCOUNTS.c.debits_must_not_exceed_credits,
                         _ACCOUNTS.c.credits_must_not_exceed_debits, *(_ACCOUNTS.c[c] for c in SUMS))
                  .where(_ACCOUNTS.c.id.in_(bindparam("ids", expanding=True))).order_by(_ACCOUNTS.c.id)
                  .with_for_update())

# PostgreSQL: fixed statements over arrays (one text whatever the group's size, so psycopg
# prepares it once), each doing in one round trip what would otherwise take two: per statement
# this process spends about as much CPU as on a request's whole view.
_PG_LOCK_AND_TAKEN = text("""
SELECT a.id, a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits,
       a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
       ARRAY(SELECT t.id FROM ledger_transfers AS t WHERE t.id = ANY(CAST(:tids AS varchar[]))) AS taken
  FROM ledger_accounts AS a
 WHERE a.id = ANY(CAST(:aids AS varchar[]))
 ORDER BY a.id
   FOR UPDATE OF a""")
_NEW_COLUMNS = ("id", "debit_account_id", "credit_account_id", "amount", "code", "kind", "status", "reference")
_PG_INSERT = """
WITH new AS (
  INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, code, kind, pending_id, status,
                                reference, batch_id, created_at)
  SELECT v.id, v.debit_account_id, v.credit_account_id, v.amount, v.code, v.kind, NULL, v.status, v.reference,
         NULL, CAST(:now AS timestamptz)
    FROM unnest(CAST(:id AS varchar[]), CAST(:debit_account_id AS varchar[]), CAST(:credit_account_id AS varchar[]),
                CAST(:amount AS bigint[]), CAST(:code AS varchar[]), CAST(:kind AS varchar[]),
                CAST(:status AS varchar[]), CAST(:reference AS varchar[]))
         AS v(id, debit_account_id, credit_account_id, amount, code, kind, status, reference)
)
"""
# Two constants of this package, no input: the INSERT, then the UPDATE shared with transfers.py.
_PG_INSERT_AND_ADD = text(_PG_INSERT + ADD_FROM_ARRAYS_SQL.lstrip("\n"))


def write_requests(session: Session, requests: Sequence[Sequence[TransferSpec]]) -> list[Outcome]:
    """Write every request's transfers in the session's transaction; commit is the caller's.

    A refused request leaves nothing behind and does not affect the others.

    :raise SQLAlchemyError: a database error; the transaction must be rolled back (no request
        was written).
    """
    outcomes: list[Outcome | None] = [None] * len(requests)
    fast = _plain_new_requests(requests)
    for index, results in _write_fast(session, requests, fast).items():
        outcomes[index] = results
    for index, specs in enumerate(requests):
        if outcomes[index] is None:
            try:
                outcomes[index] = create_transfers(session, specs)  # all-or-nothing in its own savepoint
            except Problem as problem:
                outcomes[index] = problem
    return outcomes  # type: ignore[return-value] - every slot is filled above


def _plain_new_requests(requests: Sequence[Sequence[TransferSpec]]) -> list[int]:
    """The requests the fast path may take: well-formed single or pending transfers whose ids
    appear nowhere else in the group (a second use of an id is a replay or a conflict)."""
    seen = Counter(spec.id for specs in requests for spec in specs)
    plain = []
    for index, specs in enumerate(requests):
        if not specs or any(spec.kind not in ("single", "pending") or seen[spec.id] > 1 for spec in specs):
            continue
        try:
            for spec in specs:
                check_shape(spec)
        except Problem:
            continue  # create_transfers says which transfer and why
        plain.append(index)
    return plain


def _write_fast(session: Session, requests: Sequence[Sequence[TransferSpec]], candidates: list[int]
                ) -> dict[int, list[TransferResult]]:
    """Write the candidates that are new and within every limit; returns their results by index."""
    if not candidates:
        return {}
    # Core statements on the session's connection: the ORM's execution layer would cost more CPU
    # than the database spends on them, and nothing here needs the identity map.
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    ids = [spec.id for index in candidates for spec in requests[index]]
    if postgresql:  # one round trip: the taken ids with the locked accounts of every candidate
        account_ids = {aid for i in candidates for spec in requests[i] for aid in (spec.debit_account_id,
                                                                                   spec.credit_account_id)}
        locked = connection.execute(_PG_LOCK_AND_TAKEN, {"aids": sorted(account_ids), "tids": ids}).all()
        taken = set(locked[0].taken) if locked else set()
    else:
        taken = set(connection.scalars(_TAKEN_IDS, {"ids": ids}))
    candidates = [i for i in candidates if not any(spec.id in taken for spec in requests[i])]
    if not postgresql:
        account_ids = {aid for i in candidates for spec in requests[i] for aid in (spec.debit_account_id,
                                                                                   spec.credit_account_id)}
        if not account_ids:
            return {}
        locked = connection.execute(_LOCK_ACCOUNTS, {"ids": sorted(account_ids)}).all()
    limits = {row.id: (row.debits_must_not_exceed_credits, row.credits_must_not_exceed_debits) for row in locked}
    before = {row.id: {c: getattr(row, c) for c in SUMS} for row in locked}
    sums = {aid: dict(s) for aid, s in before.items()}

    accepted: list[int] = []
    for index in candidates:
        trial = _apply(requests[index], sums, limits)
        if trial is not None:  # else: a missing account or a broken limit; create_transfers says which
            sums.update(trial)
            accepted.append(index)
    if not accepted:
        return {}
    now = utcnow()
    rows = {index: [transfer_row(spec, None, now) for spec in requests[index]] for index in accepted}
    _write_rows(session, [row for index in accepted for row in rows[index]], now,
                {aid: {c: sums[aid][c] - before[aid][c] for c in SUMS} for aid in before})
    return {index: [TransferResult(TransferRecord(**row), created=True) for row in rows[index]]
            for index in accepted}


def _write_rows(session: Session, rows: list[dict], now, net: dict[str, dict[str, int]]) -> None:
    """Insert the new transfers' rows (all created at ``now``) and add each account's net change."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(_TRANSFERS), rows)
        add_to_balances(session, net)
        return
    changes = [(aid, deltas) for aid, deltas in sorted(net.items()) if any(deltas.values())]
    connection.execute(_PG_INSERT_AND_ADD, {
        "now": now, **{column: [row[column] for row in rows] for column in _NEW_COLUMNS},
        "aid": [aid for aid, _ in changes], **{c: [deltas[c] for _, deltas in changes] for c in SUMS}})


def _apply(specs: Sequence[TransferSpec], sums: dict[str, dict[str, int]],
           limits: dict[str, tuple[bool, bool]]) -> dict[str, dict[str, int]] | None:
    """The sums of the request's accounts after its transfers, each limit checked after each
    transfer as the database would; None when an account is missing or a limit breaks."""
    trial: dict[str, dict[str, int]] = {}
    for spec in specs:
        for account_id, deltas in balance_changes(spec, None).items():
            if account_id not in limits:
                return None
            current = trial.get(account_id)
            if current is None:
                current = trial[account_id] = dict(sums[account_id])
            for column, delta in deltas.items():
                current[column] += delta
            if limit_broken(current, *limits[account_id]):
                return None
    return trial


class OneStatementWriter:
    """Writes a whole group in one PostgreSQL statement that commits on its own, or nothing.

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
        """Every request's results, committed; None when nothing was written (a request is not
        plainly new, breaks a limit or names a missing account or a taken id; not PostgreSQL;
        a database error, after which the usual path finds out what, if anything, was written).
        """
        specs = [spec for request in requests for spec in request]
        if self.engine.dialect.name != "postgresql" or not all(requests) or not one_statement.plainly_new(specs):
            return None
        connection = self._take()
        try:
            outcome = one_statement.write_new(connection, specs, now=utcnow())
        except Problem:
            self._give(connection)
            return None  # a malformed transfer: the usual path says which request and why
        except SQLAlchemyError as exc:
            log.warning("ledger_one_statement_failed", requests=len(requests),
                        error=f"{type(exc).__name__}: {exc}"[:300])
            connection.invalidate()
            connection.close()
            return None
        self._give(connection)
        if isinstance(outcome, one_statement.Refusal):
            return None
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
