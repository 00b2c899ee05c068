"""Writing to the ledger: accounts, transfers (single, pending, post, void), all-or-nothing batches.

Every function takes the session and leaves committing to its caller's use case, so a notice's
state change and its postings commit together or not at all.

Concurrency: every path that claims an id or moves a balance first locks the transfer's
accounts in account-id order (the one statement; on the exact path a locking read, a single
post's, void's or replay's too), then claims its id (INSERT) and moves the balances with
``UPDATE ... SET x = x + :amount``. The exception is a plainly new single on the exact path,
which takes no lock there (see :func:`_create_exact` for when it comes that way). A concurrent
transfer with the same id is stopped by the primary key, whatever accounts it names: its INSERT
waits for the first to end and then fails on the taken id. On PostgreSQL the row locks make
two requests on the same account serialise instead of losing an update (SQLite's single writer
lock does the same), and the one order means neither two transfers in opposite directions nor
an id claimed on one path and inserted on the other can deadlock. The account limits are CHECK
constraints (models.py), so the database itself refuses a balance that breaks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import utcnow
from common.db_driver import PSYCOPG
from common.errors import NotFound, Problem
from payment.ledger import one_statement
from payment.ledger.models import ACCOUNT_KINDS, LedgerAccount, LedgerTransfer
from payment.ledger.rules import (
    SUMS,
    LedgerError,
    TransferConflict,
    TransferRecord,
    TransferResult,
    TransferSpec,
    balance_changes,
    check_shape,
    check_shapes,
    new_status,
    walk,
)

__all__ = ["AccountSpec", "LedgerError", "TransferConflict", "TransferRecord", "TransferResult", "TransferSpec",
           "balance", "create_transfer", "create_transfers", "hold_accounts", "open_account"]


@dataclass(frozen=True)
class AccountSpec:
    id: str
    kind: str
    name: str
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


def open_account(session: Session, spec: AccountSpec) -> LedgerAccount:
    """Create an account, or return it when one with the same id and flags exists.

    :raise LedgerError: unknown kind, or the id exists with other flags.
    """
    if spec.kind not in ACCOUNT_KINDS:
        raise LedgerError(f"unknown account kind {spec.kind!r}", code="unknown_account_kind")
    existing = session.get(LedgerAccount, spec.id)
    if existing is not None:
        same = (existing.kind, existing.debits_must_not_exceed_credits, existing.credits_must_not_exceed_debits) == (
            spec.kind, spec.debits_must_not_exceed_credits, spec.credits_must_not_exceed_debits)
        if not same:
            raise LedgerError(f"account {spec.id} exists with other flags", code="account_exists_with_different_fields")
        return existing
    account = LedgerAccount(**asdict(spec), debits_pending=0, debits_posted=0, credits_pending=0, credits_posted=0)
    session.add(account)
    session.flush()
    return account


def _same(row: LedgerTransfer, spec: TransferSpec) -> bool:
    return (row.debit_account_id, row.credit_account_id, row.amount, row.code, row.kind, row.pending_id,
            row.reference) == (spec.debit_account_id, spec.credit_account_id, spec.amount, spec.code, spec.kind,
                               spec.pending_id, spec.reference)


def _move(session: Session, spec: TransferSpec, changes: dict[str, dict[str, int]]) -> None:
    """Apply balance deltas in account-id order. :raise LedgerError: a limit or an account is missing."""
    for account_id in sorted(changes):
        deltas = changes[account_id]
        values = {column: getattr(LedgerAccount, column) + delta for column, delta in deltas.items() if delta}
        if not values:
            continue
        try:
            with session.begin_nested():
                result = session.execute(update(LedgerAccount).where(LedgerAccount.id == account_id).values(**values))
        except IntegrityError as exc:
            # Which CHECK failed decides the code (both databases name the constraint).
            code = "exceeds_debits" if "credits_within_debits" in str(exc.orig) else "exceeds_credits"
            raise LedgerError(f"transfer {spec.id} would break the limit of account {account_id}", code=code,
                              account=account_id) from None
        if result.rowcount != 1:
            raise NotFound(f"no ledger account {account_id}", code="account_not_found", account=account_id)


def _resolve_pending(session: Session, spec: TransferSpec) -> LedgerTransfer:
    pending = session.get(LedgerTransfer, spec.pending_id, with_for_update=True)
    if pending is None or pending.kind != "pending":
        raise NotFound(f"no pending transfer {spec.pending_id}", code="pending_transfer_not_found")
    if pending.status != "pending":
        raise LedgerError(f"pending transfer {spec.pending_id} is already {pending.status}",
                          code=f"pending_transfer_already_{pending.status}")
    if (pending.debit_account_id, pending.credit_account_id) != (spec.debit_account_id, spec.credit_account_id):
        raise LedgerError("a post or void moves between the pending transfer's accounts",
                          code="pending_accounts_differ")
    if spec.kind == "post" and spec.amount > pending.amount:
        raise LedgerError("cannot post more than the pending amount", code="exceeds_pending_amount")
    if spec.kind == "void" and spec.amount != pending.amount:
        raise LedgerError("a void names the pending amount", code="void_amount_differs")
    pending.status = "posted" if spec.kind == "post" else "voided"
    return pending


def _create_one(session: Session, spec: TransferSpec, batch_id: str | None) -> TransferResult:
    check_shape(spec)
    values = {"id": spec.id, "debit_account_id": spec.debit_account_id, "credit_account_id": spec.credit_account_id,
              "amount": spec.amount, "code": spec.code, "kind": spec.kind, "pending_id": spec.pending_id,
              "status": new_status(spec), "reference": spec.reference,
              "batch_id": batch_id, "created_at": utcnow()}
    try:
        with session.begin_nested():
            # A statement, not session.add: the id may already be in this session (a replay in
            # the same batch), and the INSERT claims it first: a concurrent twin waits here.
            row = session.scalars(insert(LedgerTransfer).returning(LedgerTransfer), [values]).one()
    except IntegrityError:
        existing = session.get(LedgerTransfer, spec.id, populate_existing=True)
        if existing is None:
            # Not the id: a missing account or pending transfer (foreign keys), or a pending
            # transfer that another transfer already resolved (the unique pending_id).
            if spec.pending_id is not None:
                _resolve_pending(session, spec)  # raises the precise reason
            raise NotFound("a ledger account of the transfer does not exist", code="account_not_found") from None
        if not _same(existing, spec):
            raise TransferConflict(f"transfer {spec.id} exists with different fields") from None
        return TransferResult(TransferRecord.of(existing), created=False)
    pending = _resolve_pending(session, spec) if spec.kind in ("post", "void") else None
    _move(session, spec, balance_changes(spec, pending))
    return TransferResult(TransferRecord.of(row), created=True)


def account_order(session: Session):
    """The order every path locks accounts in: by id, code point by code point, as Python's
    ``sorted`` (:func:`_move`) does. On PostgreSQL a plain ``ORDER BY id`` follows the database's
    collation (en_US.utf8 in the image), which puts ``payer:x`` and ``payer_clearing`` the other
    way round: two transactions locking the same accounts in the two orders could deadlock.
    SQLite compares code points already and locks the whole database anyway. (The database's
    name decides here, not the driver's: the collation is in the SQL, whichever driver sends it.)"""
    if session.get_bind().dialect.name == "postgresql":
        return LedgerAccount.id.collate("C")
    return LedgerAccount.id


def _lock_accounts(session: Session, account_ids: set[str]) -> dict[str, LedgerAccount]:
    """Lock the accounts in the one order the transfer writers lock in (:func:`account_order`)
    and read their sums.

    :raise NotFound: an account is missing.
    """
    rows = session.scalars(select(LedgerAccount).where(LedgerAccount.id.in_(account_ids))
                           # NO KEY UPDATE, as the one statement: a transfer's INSERT takes KEY
                           # SHARE locks on its accounts (the foreign keys), which FOR UPDATE would
                           # wait for, in the constraint's order rather than this one
                           .order_by(account_order(session)).with_for_update(key_share=True)
                           .execution_options(populate_existing=True))
    accounts = {row.id: row for row in rows}
    missing = sorted(account_ids - set(accounts))
    if missing:
        raise NotFound(f"no ledger account {missing[0]}", code="account_not_found", account=missing[0])
    return accounts


def hold_accounts(session: Session, account_ids: set[str]) -> None:
    """Lock those of the accounts that exist in the one order, before anything is written, and
    read nothing: a Core statement, no rows loaded into the session (on a replay's path the ORM
    read cost 0.5 ms more CPU per call). Only on PostgreSQL: SQLite's one writer lock
    serialises the writers already. (The database's name decides, as in :func:`account_order`:
    the locking read is SQL, whichever driver sends it.)"""
    connection = session.connection()
    if connection.dialect.name != "postgresql" or not account_ids:
        return
    # A Core statement does not autoflush: without this, rows pending in the session would be
    # written after the locks here, but before them on the ORM path (:func:`_lock_accounts`).
    session.flush()
    table = LedgerAccount.__table__
    connection.execute(select(table.c.id).where(table.c.id.in_(sorted(account_ids)))
                       .order_by(table.c.id.collate("C")).with_for_update(key_share=True))


def _check_limits(accounts: dict[str, LedgerAccount], specs: Sequence[TransferSpec]) -> dict[str, dict[str, int]]:
    """Walk the batch on the locked accounts' sums in order (:func:`~payment.ledger.rules.walk`);
    returns the net change per account.

    :raise LedgerError: a transfer breaks a limit (``index`` says which; nothing was written).
    """
    locked = {aid: ({c: getattr(a, c) for c in SUMS}, a.debits_must_not_exceed_credits,
                    a.credits_must_not_exceed_debits) for aid, a in accounts.items()}
    return walk(specs, locked).net


def _transfer_row(spec: TransferSpec, batch_id: str | None, now: datetime) -> dict:
    """The ``ledger_transfers`` row of a new single or pending transfer."""
    return {"id": spec.id, "debit_account_id": spec.debit_account_id, "credit_account_id": spec.credit_account_id,
            "amount": spec.amount, "code": spec.code, "kind": spec.kind, "pending_id": None,
            "status": new_status(spec), "reference": spec.reference,
            "batch_id": batch_id, "created_at": now}


def _add_to_balances(session: Session, net: dict[str, dict[str, int]]) -> None:
    """Add each account's net change, in account-id order (the rows are locked already; the
    CHECK constraints still guard every limit). PostgreSQL does this inside the one statement."""
    changes = [{"aid": aid, **deltas} for aid, deltas in sorted(net.items()) if any(deltas.values())]
    if changes:
        table = LedgerAccount.__table__
        session.connection().execute(update(table).where(table.c.id == bindparam("aid"))
                                     .values({c: table.c[c] + bindparam(c) for c in SUMS}), changes)


def _create_new(session: Session, specs: Sequence[TransferSpec], batch_id: str | None
                ) -> list[TransferResult] | None:
    """The common case: new single or pending transfers. On psycopg one statement
    (one_statement.py: it goes to psycopg's own cursor, so the driver decides, not the
    database); elsewhere (SQLite, or PostgreSQL through another driver) the accounts locked in
    order and checked in Python, all rows in one INSERT, each account updated once. None: an id
    is taken (nothing was written).

    :raise LedgerError, NotFound: as :func:`create_transfers`; nothing was written.
    :raise IntegrityError: an id was taken meanwhile (the caller rolls back to its savepoint).
    """
    if session.connection().dialect.driver == PSYCOPG:
        session.flush()  # a Core statement on the connection does not autoflush the session's changes
        outcome = one_statement.write_new(session.connection(), specs, now=utcnow(), batch_id=batch_id)
        if not isinstance(outcome, one_statement.Refusal):
            return outcome
        if outcome.taken:
            return None  # a replay or a conflict comes before any limit: the exact path tells which
        if outcome.missing:
            raise NotFound(f"no ledger account {outcome.missing[0]}", code="account_not_found",
                           account=outcome.missing[0])
        if outcome.broken:  # the accounts stay locked: the Python check finds the same transfer
            _check_limits(_lock_accounts(session, {s.debit_account_id for s in specs} |
                                         {s.credit_account_id for s in specs}), specs)
        return None
    check_shapes(specs)
    accounts = _lock_accounts(session, {s.debit_account_id for s in specs} | {s.credit_account_id for s in specs})
    now = utcnow()
    rows = [_transfer_row(s, batch_id, now) for s in specs]
    session.execute(insert(LedgerTransfer), rows)  # first: a taken id means a replay, not a limit
    _add_to_balances(session, _check_limits(accounts, specs))
    return [TransferResult(TransferRecord(**row), created=True) for row in rows]


def _create_exact(session: Session, specs: Sequence[TransferSpec], batch_id: str | None) -> list[TransferResult]:
    """One transfer at a time, each id claimed first: replays, conflicts, post and void.

    The accounts are locked before any id is claimed, a single post's or void's too, as the one
    statement locks them before it inserts: a post that claimed its id first and then waited
    for an account deadlocked with a statement holding that account and inserting the same id
    (tests/payment/test_lock_order.py). A single transfer's missing account is left to the
    steps below, whose answer for it (a conflict, a pending transfer's reason) comes first.
    """
    results: list[TransferResult] = []
    accounts = {s.debit_account_id for s in specs} | {s.credit_account_id for s in specs}
    if len(specs) > 1:
        _lock_accounts(session, accounts)
    elif not one_statement.plainly_new(specs):
        # A plainly new single comes here when its id is taken (the one statement saw it or
        # failed on it: committed by another transaction, or on SQLite possibly by our own
        # uncommitted one), so its INSERT claims nothing and it moves nothing and a replay costs
        # no locking read; or when _create_new found a broken limit that the Python check did not
        # raise, and then its accounts are locked already.
        hold_accounts(session, accounts)
    for index, spec in enumerate(specs):
        try:
            results.append(_create_one(session, spec, batch_id))
        except Problem as problem:
            problem.extra.setdefault("index", index)
            raise
    return results


def create_transfers(session: Session, specs: Sequence[TransferSpec], *, batch_id: str | None = None
                     ) -> list[TransferResult]:
    """Write transfers all-or-nothing (TigerBeetle's linked chain): if one is refused, none is.
    Limits are checked after each transfer in order, as if they were written one by one.

    A transfer whose id already exists with the same fields is a replay: it is returned with
    ``created=False`` and moves nothing again.

    :raise LedgerError: a transfer is malformed or breaks an account limit (``index`` says which).
    :raise TransferConflict: an id exists with different fields.
    :raise NotFound: an account or pending transfer is missing.
    """
    if one_statement.plainly_new(specs):
        try:
            with session.begin_nested():
                written = _create_new(session, specs, batch_id)
            if written is not None:
                return written
        except IntegrityError:
            pass  # an id is taken (a replay or a conflict): the exact path tells which
    with session.begin_nested():
        return _create_exact(session, specs, batch_id)


def create_transfer(session: Session, spec: TransferSpec) -> TransferResult:
    """One transfer; see :func:`create_transfers`."""
    return create_transfers(session, [spec])[0]


def balance(account: LedgerAccount) -> dict[str, int]:
    """The four sums and the two derived balances of an account."""
    return {"debits_pending": account.debits_pending, "debits_posted": account.debits_posted,
            "credits_pending": account.credits_pending, "credits_posted": account.credits_posted,
            "credit_balance": account.credits_posted - account.debits_posted,
            "debit_balance": account.debits_posted - account.credits_posted}
