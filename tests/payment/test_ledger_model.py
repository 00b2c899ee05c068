"""The ledger against a simple in-memory model (STANDARDS.md §7): a hypothesis state machine
writes random transfers, replays and batches; after every step the stored balances equal the
model's and ``check_ledger`` finds nothing. Runs on SQLite, and on PostgreSQL in CI."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from common.errors import Problem
from payment.ledger.checks import check_ledger
from payment.ledger.models import LedgerAccount
from payment.ledger.transfers import AccountSpec, TransferSpec, create_transfers, open_account

ACCOUNTS = {"a": (False, False), "b": (True, False), "c": (False, True), "d": (False, False)}
ids = st.sampled_from([f"t{i}" for i in range(12)])
accounts = st.sampled_from(sorted(ACCOUNTS))
amounts = st.integers(min_value=1, max_value=50)
singles = st.builds(lambda i, d, c, a: TransferSpec(i, d, c, a, "payment"), ids, accounts, accounts, amounts)


class Model:
    """What the ledger should hold: sums per account, transfers by id."""

    def __init__(self) -> None:
        self.sums = {a: {"debits_posted": 0, "credits_posted": 0, "debits_pending": 0, "credits_pending": 0}
                     for a in ACCOUNTS}
        self.transfers: dict[str, TransferSpec] = {}

    def apply(self, specs: list[TransferSpec]) -> bool:
        """All-or-nothing like the ledger; False when the model says the batch must be refused."""
        sums = {a: dict(v) for a, v in self.sums.items()}
        seen = dict(self.transfers)
        for spec in specs:
            if spec.id in seen:
                if seen[spec.id] != spec:
                    return False
                continue
            if spec.debit_account_id == spec.credit_account_id:
                return False
            sums[spec.debit_account_id]["debits_posted"] += spec.amount
            sums[spec.credit_account_id]["credits_posted"] += spec.amount
            for account, (dmnec, cmned) in ACCOUNTS.items():
                s = sums[account]
                if (dmnec and s["debits_posted"] > s["credits_posted"]) or \
                        (cmned and s["credits_posted"] > s["debits_posted"]):
                    return False
            seen[spec.id] = spec
        self.sums, self.transfers = sums, seen
        return True


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

        @rule(spec=singles)
        def one(self, spec):
            self._write([spec])

        @rule(specs=st.lists(singles, min_size=2, max_size=4))
        def batch(self, specs):
            self._write(specs)

        @invariant()
        def balances_match(self):
            session.expire_all()
            for account in session.query(LedgerAccount):
                stored = {k: getattr(account, k) for k in self.model.sums[account.id]}
                assert stored == self.model.sums[account.id]
            assert check_ledger(session).ok

    LedgerMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=10, deadline=None,
                                               suppress_health_check=[HealthCheck.function_scoped_fixture])
    LedgerMachine.TestCase().runTest()
