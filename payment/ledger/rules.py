"""What a transfer is and what it does to balances: the rules every write path applies.

Kept apart from the writers (``transfers.py`` statement by statement, ``one_statement.py`` in
one PostgreSQL statement, ``group_write.py`` for many requests) so they share one copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from common.errors import Conflict, Problem
from payment.ledger.models import TRANSFER_CODES, LedgerTransfer

KINDS = ("single", "pending", "post", "void")
MAX_ID = 64
SUMS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


class LedgerError(Problem):
    status, code, title = 422, "ledger_refused", "The ledger refused the transfer"


class TransferConflict(Conflict):
    """The id names an existing transfer whose fields differ (an idempotency-key reuse)."""

    code = "transfer_exists_with_different_fields"


@dataclass(frozen=True)
class TransferSpec:
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    code: str
    kind: str = "single"
    pending_id: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A written transfer as its caller sees it (a plain value: building an ORM object for each
    row of a batch cost more CPU than writing it)."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    code: str
    kind: str
    pending_id: str | None
    status: str
    reference: str | None
    batch_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: LedgerTransfer) -> TransferRecord:
        return cls(row.id, row.debit_account_id, row.credit_account_id, row.amount, row.code, row.kind,
                   row.pending_id, row.status, row.reference, row.batch_id, row.created_at)


@dataclass(frozen=True, slots=True)
class TransferResult:
    transfer: TransferRecord
    created: bool  # False: the same transfer had already been written (a replay)


def check_shape(spec: TransferSpec) -> None:
    """:raise LedgerError: the transfer is malformed whatever the ledger holds."""
    if not spec.id or len(spec.id) > MAX_ID:
        raise LedgerError(f"a transfer id is 1-{MAX_ID} characters", code="invalid_transfer_id")
    if type(spec.amount) is not int or spec.amount <= 0:
        raise LedgerError("the amount is a positive integer number of fen", code="invalid_amount")
    if spec.code not in TRANSFER_CODES:
        raise LedgerError(f"unknown transfer code {spec.code!r}", code="unknown_transfer_code")
    if spec.kind not in KINDS:
        raise LedgerError(f"unknown transfer kind {spec.kind!r}", code="unknown_transfer_kind")
    if spec.debit_account_id == spec.credit_account_id:
        raise LedgerError("debit and credit accounts must differ", code="same_account")
    if (spec.kind in ("post", "void")) != (spec.pending_id is not None):
        raise LedgerError("post and void name a pending_id; other kinds do not", code="invalid_pending_id")


def check_shapes(specs: Sequence[TransferSpec]) -> None:
    """:raise LedgerError: a transfer is malformed; ``index`` says which."""
    for index, spec in enumerate(specs):
        try:
            check_shape(spec)
        except Problem as problem:
            problem.extra.setdefault("index", index)
            raise


def new_status(spec: TransferSpec) -> str:
    """The status a new single or pending transfer is written with."""
    return "pending" if spec.kind == "pending" else "posted"


def balance_changes(spec: TransferSpec, pending: LedgerTransfer | None) -> dict[str, dict[str, int]]:
    """What the transfer adds to each of its two accounts' sums (``pending``: the one it resolves)."""
    debit, credit, amount = spec.debit_account_id, spec.credit_account_id, spec.amount
    if spec.kind == "single":
        return {debit: {"debits_posted": amount}, credit: {"credits_posted": amount}}
    if spec.kind == "pending":
        return {debit: {"debits_pending": amount}, credit: {"credits_pending": amount}}
    assert pending is not None
    # Post or void releases the whole reservation; a post may post less than was reserved.
    changes = {debit: {"debits_pending": -pending.amount}, credit: {"credits_pending": -pending.amount}}
    if spec.kind == "post":
        changes[debit]["debits_posted"] = amount
        changes[credit]["credits_posted"] = amount
    return changes


def limit_broken(sums: dict[str, int], debits_must_not_exceed_credits: bool,
                 credits_must_not_exceed_debits: bool) -> str | None:
    """The code of the account limit that ``sums`` break (the CHECK constraints of models.py), or None."""
    over_debits, over_credits = over_limits(sums)
    if debits_must_not_exceed_credits and over_debits > 0:
        return "exceeds_credits"
    if credits_must_not_exceed_debits and over_credits > 0:
        return "exceeds_debits"
    return None


def over_limits(sums: dict[str, int]) -> tuple[int, int]:
    """How far ``sums`` are past each limit (debits within credits, credits within debits); a
    limit holds while its figure is ≤ 0."""
    return (sums["debits_pending"] + sums["debits_posted"] - sums["credits_posted"],
            sums["credits_pending"] + sums["credits_posted"] - sums["debits_posted"])


@dataclass(frozen=True, slots=True)
class Run:
    """What a run of new transfers does to its accounts: each account's net change to its four
    sums, and the highest value each of its two limit figures (:func:`over_limits`) reaches along
    the run, relative to where the account starts. A limit holds after every transfer in order
    exactly when it holds at that peak: the one statement checks one inequality per account."""

    net: dict[str, dict[str, int]]
    peaks: dict[str, tuple[int, int]]


def walk(specs: Sequence[TransferSpec], locked: dict[str, tuple[dict[str, int], bool, bool]] | None = None) -> Run:
    """Walk the new single or pending transfers ``specs`` in order: the one copy of the limit walk.

    ``locked``, when given (the accounts' locked sums and their two limit flags, by id), is
    checked after each transfer as the database would check it; the peaks are then left empty
    (only the one statement, which walks without ``locked``, uses them).

    :raise LedgerError: with ``locked``: a transfer breaks a limit (``index`` and ``account``
        say which; the first one in order).
    """
    net: dict[str, dict[str, int]] = {}
    peaks: dict[str, tuple[int, int]] = {}
    for index, spec in enumerate(specs):
        for account_id, deltas in balance_changes(spec, None).items():
            moved = net.get(account_id)
            if moved is None:
                moved = net[account_id] = dict.fromkeys(SUMS, 0)
            for column, delta in deltas.items():
                moved[column] += delta
            if locked is None:
                over_debits, over_credits = over_limits(moved)
                peak = peaks.get(account_id)
                peaks[account_id] = (over_debits, over_credits) if peak is None else \
                    (max(peak[0], over_debits), max(peak[1], over_credits))
            else:
                sums, debits_limited, credits_limited = locked[account_id]
                code = limit_broken({c: sums[c] + moved[c] for c in SUMS}, debits_limited, credits_limited)
                if code:
                    raise LedgerError(f"transfer {spec.id} would break the limit of account {account_id}",
                                      code=code, account=account_id, index=index)
    return Run(net, peaks)
