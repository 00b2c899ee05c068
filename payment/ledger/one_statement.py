"""New transfers written by one PostgreSQL statement: lock, check, insert, move, or nothing.

Why: the common write is a run of plainly new single or pending transfers between existing
accounts within their limits. Done statement by statement (lock the accounts, look for taken
ids, insert, update the sums) it costs a round trip and SQLAlchemy's per-statement CPU each,
and the accounts stay locked across every Python wake-up in between (with many threads in a
process that is a wait for the GIL each time). Here the rules stay in Python and the database
does one statement:

* Python checks each transfer's shape (:func:`~payment.ledger.rules.check_shapes`) and
  works out, with :func:`~payment.ledger.rules.walk` (the one limit walk), each account's net
  change and the *peak* its limit expression reaches along the run (``debits_pending +
  debits_posted - credits_posted`` for debits-must-not-exceed-credits, the mirror for the other
  flag), relative to where it starts. A limit holds after every transfer in order exactly when
  it holds at the peak, so the database checks one inequality per account instead of replaying
  the run.
* The statement locks the accounts in id order, code point by code point (``COLLATE "C"``, as
  ``transfers.account_order``; ``FOR NO KEY UPDATE``: the foreign-key checks
  of other inserts, which take ``KEY SHARE``, are not blocked), and only if every account
  exists, every limit holds at its peak on the locked sums and no id is taken does it insert
  every row and add every account's net change. Otherwise it writes nothing and says why.
* The CHECK constraints (models.py) stay the last word.

An id taken by a transaction that commits while this statement runs (a concurrent twin) is not
seen by its snapshot: the INSERT then fails on the primary key, a database error, with nothing
written by this statement.

The batch travels as two JSON texts: psycopg dumps a Python list into a PostgreSQL array one
element at a time in Python (≈ 2 µs each, more than the rest of a transfer's work here), a JSON
text is written by the C encoder.

Every row of ``ledger_transfers`` and ``ledger_accounts`` the statement touches is reached by
its primary key, one probe per id, whatever the tables' statistics say, and the statement is
planned afresh at each execution:

* The joins are written ``t.id = ANY (ARRAY[r.id])``, not ``t.id = r.id``: that condition can be
  neither hashed nor merged, so the only plans are a nested loop over the batch, probing the
  index per id, or one that reads the whole table per id, which the planner never prefers once
  the table has more than a handful of rows. With ``=`` the batch (estimated at 100 rows,
  whatever its size) was hash-joined with a sequential scan of the whole table.
* ``prepare=False``: psycopg would prepare the statement after five executions and PostgreSQL
  then keeps one generic plan until the tables' statistics change. Planned while
  ``ledger_transfers`` was empty (a fresh or freshly analysed ledger) that plan read the whole
  transfers table for taken ids, and it was kept while the table grew: four connections writing
  groups of 12 on a fresh ledger, database CPU per statement rose from 4.4 to 20 ms in three
  minutes (14,900 statements). A plan made at each execution costs its planning, and sees the
  tables as they are: 1.8-2.6 ms over the same three minutes (28,100 statements).

The statement goes to the driver's own cursor on the caller's connection (same connection, same
transaction), not through SQLAlchemy's ``Connection.execute``: that cost ≈ 0.15–0.25 ms of CPU
per statement (0.45–0.63 against 0.30–0.37 ms for one transfer, 0.69–0.81 against 0.49–0.57 for
ten, measured alternately on one connection), and on PostgreSQL this statement is the ledger
committer's whole round trip, so its CPU sits on the path every waiting request is queued
behind. A driver error is raised as SQLAlchemy raises it (``IntegrityError`` for a taken id...),
so callers see no difference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from common.db_driver import driver_errors
from payment.ledger.rules import (
    SUMS,
    TransferRecord,
    TransferResult,
    TransferSpec,
    check_shapes,
    new_status,
    walk,
)

# psycopg's own placeholders: the text goes to the driver's cursor (see the module's doc).
_WRITE_NEW = """
WITH v AS MATERIALIZED (
  SELECT e->>0 AS aid, (e->>1)::bigint AS debits_pending, (e->>2)::bigint AS debits_posted,
         (e->>3)::bigint AS credits_pending, (e->>4)::bigint AS credits_posted,
         (e->>5)::bigint AS peak_d, (e->>6)::bigint AS peak_c
    FROM jsonb_array_elements(CAST(%(accounts)s AS jsonb)) AS e
),
r AS MATERIALIZED (
  SELECT e->>0 AS id, e->>1 AS debit_account_id, e->>2 AS credit_account_id, (e->>3)::bigint AS amount,
         e->>4 AS code, e->>5 AS kind, e->>6 AS status, e->>7 AS reference
    FROM jsonb_array_elements(CAST(%(transfers)s AS jsonb)) AS e
),
-- Before any lock: the accounts stay locked from here to the commit, and a taken id (a replay
-- or a conflict: the exact path decides) needs no lock at all. "= ANY (ARRAY[...])" in every
-- join with a table: one primary-key probe per id (see the module's doc). The ids are distinct.
taken AS MATERIALIZED (
  SELECT ARRAY(SELECT t.id FROM r JOIN ledger_transfers AS t ON t.id = ANY (ARRAY[r.id])) AS ids
),
locked AS MATERIALIZED (
  SELECT a.id, a.debits_must_not_exceed_credits AS dl, a.credits_must_not_exceed_debits AS cl,
         a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted
    FROM v JOIN ledger_accounts AS a ON a.id = ANY (ARRAY[v.aid])
   WHERE (SELECT cardinality(ids) FROM taken) = 0
   ORDER BY a.id COLLATE "C"
     FOR NO KEY UPDATE OF a
),
verdict AS MATERIALIZED (
  SELECT CASE WHEN cardinality(taken.ids) = 0
              THEN ARRAY(SELECT v.aid FROM v WHERE NOT EXISTS (SELECT FROM locked AS l WHERE l.id = v.aid))
              ELSE '{}' END AS missing,
         EXISTS (SELECT FROM v JOIN locked AS l ON l.id = v.aid
                  WHERE (l.dl AND l.debits_pending + l.debits_posted - l.credits_posted + v.peak_d > 0)
                     OR (l.cl AND l.credits_pending + l.credits_posted - l.debits_posted + v.peak_c > 0)) AS broken,
         taken.ids AS taken,
         -- reads every row of "locked": all the accounts are locked before anything is written
         (SELECT count(*) FROM locked) AS locked
    FROM taken
),
ok AS MATERIALIZED (
  SELECT cardinality(missing) = 0 AND NOT broken AND cardinality(taken) = 0 AS ok FROM verdict
),
new AS (
  INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, code, kind, pending_id, status,
                                reference, batch_id, created_at)
  SELECT r.id, r.debit_account_id, r.credit_account_id, r.amount, r.code, r.kind, NULL, r.status, r.reference,
         CAST(%(batch_id)s AS varchar), CAST(%(now)s AS timestamptz)
    FROM r
   WHERE (SELECT ok FROM ok)
  RETURNING 1
),
moved AS (
  UPDATE ledger_accounts AS a
     SET debits_pending = a.debits_pending + v.debits_pending, debits_posted = a.debits_posted + v.debits_posted,
         credits_pending = a.credits_pending + v.credits_pending, credits_posted = a.credits_posted + v.credits_posted
    FROM v
   WHERE a.id = ANY (ARRAY[v.aid]) AND (SELECT ok FROM ok)
  RETURNING 1
)
SELECT verdict.missing, verdict.broken, verdict.taken, (SELECT count(*) FROM new) AS written
  FROM verdict"""


@dataclass(frozen=True)
class Refusal:
    """Why the statement wrote nothing: the accounts that do not exist, whether a limit would
    break, the ids already taken."""

    missing: list[str]
    broken: bool
    taken: list[str]


def plainly_new(specs: Sequence[TransferSpec]) -> bool:
    """Whether the one statement may take ``specs``: single or pending transfers, ids distinct."""
    return bool(specs) and all(s.kind in ("single", "pending") for s in specs) and \
        len({s.id for s in specs}) == len(specs)


def write_new(connection: Connection, specs: Sequence[TransferSpec], *, now: datetime,
              batch_id: str | None = None) -> list[TransferResult] | Refusal:
    """Write ``specs`` (see :func:`plainly_new`) all-or-nothing in one statement, in the
    connection's transaction (or as its own, on an autocommit connection), created at ``now``.

    :raise LedgerError: a transfer is malformed (``index`` says which; nothing was sent).
    :raise SQLAlchemyError: a database error (an id taken by a concurrent transaction among
        them); this statement wrote nothing.
    """
    check_shapes(specs)
    rows = [(spec.id, spec.debit_account_id, spec.credit_account_id, spec.amount, spec.code, spec.kind,
             new_status(spec), spec.reference) for spec in specs]
    run = walk(specs)
    missing, broken, taken, written = _execute(connection, {
        "transfers": json.dumps(rows, ensure_ascii=False),
        "accounts": json.dumps([[aid, *(sums[c] for c in SUMS), *run.peaks[aid]]
                                for aid, sums in sorted(run.net.items())], ensure_ascii=False),
        "batch_id": batch_id, "now": now})
    if written != len(rows):
        return Refusal(sorted(missing), broken, sorted(taken))
    return [TransferResult(_record(row, batch_id, now), created=True) for row in rows]


def _execute(connection: Connection, params: dict) -> tuple:
    """The statement's one row, run on ``connection``'s driver connection in its transaction.

    :raise SQLAlchemyError: the driver's error as SQLAlchemy's ``execute`` would raise it.
    """
    with driver_errors(_WRITE_NEW, params), connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(_WRITE_NEW, params, prepare=False)  # planned at each execution: see the module's doc
        return cursor.fetchone()


def _record(row: tuple, batch_id: str | None, now: datetime) -> TransferRecord:
    tid, debit, credit, amount, code, kind, status, reference = row
    return TransferRecord(tid, debit, credit, amount, code, kind, None, status, reference, batch_id, now)
