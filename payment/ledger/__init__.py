"""The double-entry ledger (复式记账总账): accounts, immutable transfers, invariants.

Modelled on TigerBeetle's data model (STANDARDS.md §7): balances are four running sums per
account, a transfer is immutable once written and named by an id its caller chooses, a pending
transfer reserves an amount until a later transfer posts or voids it. The database enforces
what must never be false (amounts positive, flagged accounts within their limits, a pending
transfer resolved once), so no interleaving of requests can break it.
"""
