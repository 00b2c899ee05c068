"""The ledger's invariants (STANDARDS.md §7), checked from the stored rows alone.

``xsn ledger check`` runs :func:`check_ledger`; the property tests run it after every step.
Each finding names the invariant it breaks, so an operator can tell a lost update from a
missing posting.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from payment.ledger.models import LedgerAccount, LedgerTransfer


@dataclass
class LedgerReport:
    accounts: int = 0
    transfers: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def _expected_sums(session: Session) -> dict[str, dict[str, int]]:
    """Each account's four sums recomputed from the transfers (the journal is the truth)."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in session.execute(select(LedgerTransfer.kind, LedgerTransfer.status, LedgerTransfer.amount,
                                      LedgerTransfer.debit_account_id, LedgerTransfer.credit_account_id)):
        if row.kind == "pending":  # once resolved, it counts through the transfer that posted it
            if row.status == "pending":
                sums[row.debit_account_id]["debits_pending"] += row.amount
                sums[row.credit_account_id]["credits_pending"] += row.amount
        elif row.kind in ("single", "post"):
            sums[row.debit_account_id]["debits_posted"] += row.amount
            sums[row.credit_account_id]["credits_posted"] += row.amount
    return sums


def check_ledger(session: Session) -> LedgerReport:
    report = LedgerReport()
    totals = session.execute(select(func.coalesce(func.sum(LedgerAccount.debits_posted), 0),
                                    func.coalesce(func.sum(LedgerAccount.credits_posted), 0),
                                    func.coalesce(func.sum(LedgerAccount.debits_pending), 0),
                                    func.coalesce(func.sum(LedgerAccount.credits_pending), 0))).one()
    if totals[0] != totals[1]:
        report.findings.append(f"posted debits {totals[0]} != posted credits {totals[1]}")
    if totals[2] != totals[3]:
        report.findings.append(f"pending debits {totals[2]} != pending credits {totals[3]}")

    expected = _expected_sums(session)
    for account in session.scalars(select(LedgerAccount).order_by(LedgerAccount.id)):
        report.accounts += 1
        for column in ("debits_pending", "debits_posted", "credits_pending", "credits_posted"):
            stored, derived = getattr(account, column), expected[account.id][column]
            if stored != derived:
                report.findings.append(f"account {account.id}: {column} is {stored}, the journal says {derived}")
        if account.debits_must_not_exceed_credits and \
                account.debits_pending + account.debits_posted > account.credits_posted:
            report.findings.append(f"account {account.id}: debits exceed credits")
        if account.credits_must_not_exceed_debits and \
                account.credits_pending + account.credits_posted > account.debits_posted:
            report.findings.append(f"account {account.id}: credits exceed debits")

    transfers = {row.id: row for row in session.scalars(select(LedgerTransfer))}
    report.transfers = len(transfers)
    resolutions: dict[str, list[str]] = defaultdict(list)
    for row in transfers.values():
        if row.amount <= 0:
            report.findings.append(f"transfer {row.id}: amount {row.amount} is not positive")
        if row.kind in ("post", "void"):
            resolutions[row.pending_id or ""].append(row.id)
    for pending_id, resolvers in resolutions.items():
        pending = transfers.get(pending_id)
        if pending is None or pending.kind != "pending":
            report.findings.append(f"transfers {resolvers} resolve {pending_id!r}, which is not a pending transfer")
            continue
        if len(resolvers) > 1:
            report.findings.append(f"pending transfer {pending_id} resolved {len(resolvers)} times")
        kind = transfers[resolvers[0]].kind
        if pending.status != ("posted" if kind == "post" else "voided"):
            report.findings.append(f"pending transfer {pending_id} is {pending.status} but was {kind}ed")
    for row in transfers.values():
        if row.kind == "pending" and row.status != "pending" and row.id not in resolutions:
            report.findings.append(f"pending transfer {row.id} is {row.status} with no transfer resolving it")
    return report
