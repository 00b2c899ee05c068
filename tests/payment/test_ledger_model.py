"""The ledger against a simple in-memory model (STANDARDS.md §7): a hypothesis state machine
writes random single, pending, post and void transfers, replays, conflicting ids and
all-or-nothing batches mixing them (a pending and its post in one batch too); after every step
the stored balances and transfer states equal the model's and ``check_ledger`` finds nothing.
Runs on SQLite, and on PostgreSQL in CI."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from common.errors import Problem
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount, LedgerTransfer
from payment.ledger.transfers import AccountSpec, TransferSpec, create_transfers, open_account

# name -> (debits_must_not_exceed_credits, credits_must_not_exceed_debits)
ACCOUNTS = {"a": (False, False), "b": (True, False), "c": (False, True), "d": (False, False)}
SUMS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
ids = st.sampled_from([f"t{i}" for i in range(16)])
accounts = st.sampled_from(sorted(ACCOUNTS))
amounts = st.integers(min_value=1, max_value=50)
singles = st.builds(lambda i, d, c, a: TransferSpec(i, d, c, a, "payment"), ids, accounts, accounts, amounts)
pendings = st.builds(lambda i, d, c, a: TransferSpec(i, d, c, a, "payment", kind="pending"),
                     ids, accounts, accounts, amounts)
# Resolutions drawn blind: mostly refused (no such pending, other accounts, wrong amount).
blind_resolutions = st.builds(lambda i, k, p, d, c, a: TransferSpec(i, d, c, a, "payment", kind=k, pending_id=p),
                              ids, st.sampled_from(["post", "void"]), ids, accounts, accounts, amounts)
any_transfer = st.one_of(singles, pendings, blind_resolutions)


class Model:
    """What the ledger should hold: the four sums per account, the transfers and pending states."""

    def __init__(self) -> None:
        self.sums = {a: dict.fromkeys(SUMS, 0) for a in ACCOUNTS}
        self.transfers: dict[str, TransferSpec] = {}
        self.status: dict[str, str] = {}  # id -> pending | posted | voided

    def open_pendings(self) -> list[TransferSpec]:
        return [self.transfers[i] for i, s in sorted(self.status.items()) if s == "pending"]

    @staticmethod
    def _deltas(spec: TransferSpec, pending: TransferSpec | None) -> list[tuple[str, str, int]]:
        d, c, amount = spec.debit_account_id, spec.credit_account_id, spec.amount
        if spec.kind == "single":
            return [(d, "debits_posted", amount), (c, "credits_posted", amount)]
        if spec.kind == "pending":
            return [(d, "debits_pending", amount), (c, "credits_pending", amount)]
        released = [(d, "debits_pending", -pending.amount), (c, "credits_pending", -pending.amount)]
        return released + ([(d, "debits_posted", amount), (c, "credits_posted", amount)] if spec.kind == "post" else [])

    def apply(self, specs: list[TransferSpec]) -> bool:
        """All-or-nothing like the ledger; False when the model says the batch must be refused."""
        sums = {a: dict(v) for a, v in self.sums.items()}
        seen, status = dict(self.transfers), dict(self.status)
        for spec in specs:
            if spec.id in seen:  # a replay moves nothing; the same id with other fields is refused
                if seen[spec.id] != spec:
                    return False
                continue
            if spec.debit_account_id == spec.credit_account_id:
                return False
            pending = None
            if spec.kind in ("post", "void"):
                pending = seen.get(spec.pending_id)
                if pending is None or pending.kind != "pending" or status[pending.id] != "pending":
                    return False
                if (pending.debit_account_id, pending.credit_account_id) != (spec.debit_account_id,
                                                                            spec.credit_account_id):
                    return False
                if (spec.kind == "post" and spec.amount > pending.amount) or \
                        (spec.kind == "void" and spec.amount != pending.amount):
                    return False
                status[pending.id] = "posted" if spec.kind == "post" else "voided"
            for account, column, delta in self._deltas(spec, pending):
                sums[account][column] += delta
            for account, (dmnec, cmned) in ACCOUNTS.items():
                s = sums[account]
                if (dmnec and s["debits_pending"] + s["debits_posted"] > s["credits_posted"]) or \
                        (cmned and s["credits_pending"] + s["credits_posted"] > s["debits_posted"]):
                    return False
            seen[spec.id] = spec
            if spec.kind == "pending":
                status[spec.id] = "pending"
        self.sums, self.transfers, self.status = sums, seen, status
        return True


@pytest.mark.slow
def test_ledger_matches_the_model(app, session):
    class LedgerMachine(RuleBasedStateMachine):
        @initialize()
        def fresh(self):
            session.rollback()
            for table in ("ledger_transfers", "ledger_accounts"):
                session.execute(LedgerAccount.metadata.tables[table].delete())
            for name, (dmnec, cmned) in ACCOUNTS.items():
                open_account(session, AccountSpec(name, "suspense", name, debits_must_not_exceed_credits=dmnec,
                                                  credits_must_not_exceed_debits=cmned))
            session.commit()
            self.model = Model()

        def _write(self, specs):
            expected = self.model.apply(specs)
            try:
                create_transfers(session, specs)
                session.commit()
                written = True
            except Problem:
                session.rollback()
                written = False
            assert written == expected, specs

        @rule(spec=any_transfer)
        def one(self, spec):
            self._write([spec])

        @rule(specs=st.lists(any_transfer, min_size=2, max_size=4))
        def batch(self, specs):
            self._write(specs)

        @rule(data=st.data(), kind=st.sampled_from(["post", "void"]), new_id=ids, extra=st.integers(-60, 5))
        def resolve(self, data, kind, new_id, extra):
            """Post (possibly less, or more than reserved) or void a pending transfer the model holds open."""
            open_ = self.model.open_pendings()
            if not open_:
                return
            pending = data.draw(st.sampled_from(open_))
            amount = pending.amount if kind == "void" else max(1, pending.amount + extra)
            self._write([TransferSpec(new_id, pending.debit_account_id, pending.credit_account_id, amount,
                                      "payment", kind=kind, pending_id=pending.id)])

        @rule(pending=pendings, post_id=ids, extra=st.integers(-60, 0), then=singles)
        def pending_and_post_in_one_batch(self, pending, post_id, extra, then):
            post = replace(pending, id=post_id, kind="post", pending_id=pending.id,
                           amount=max(1, pending.amount + extra))
            self._write([pending, post, then])

        @rule(spec=any_transfer, amount=amounts)
        def same_id_other_fields(self, spec, amount):
            """Write, then the same id with another amount: a conflict whenever the first was stored."""
            self._write([spec])
            self._write([replace(spec, amount=amount)])

        @invariant()
        def balances_match(self):
            session.expire_all()
            for account in session.query(LedgerAccount):
                stored = {k: getattr(account, k) for k in SUMS}
                assert stored == self.model.sums[account.id], account.id
            stored_status = {t.id: t.status for t in session.query(LedgerTransfer) if t.kind == "pending"}
            assert stored_status == self.model.status
            assert set(session.scalars(LedgerTransfer.__table__.select().with_only_columns(
                LedgerTransfer.id))) == set(self.model.transfers)
            assert check_ledger(session).ok

    LedgerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                               suppress_health_check=[HealthCheck.function_scoped_fixture])
    LedgerMachine.TestCase().runTest()
