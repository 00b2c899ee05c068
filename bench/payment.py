"""Benchmark the payment node's ledger on PostgreSQL against pgbench, in one run.

Run from the repository root (needs PostgreSQL and Debian's ``wrk`` and ``pgbench``)::

    python -m bench.payment [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
                            [--seconds 5] [--clients 8] [--batch 100] [--http-only]

Phases, each measured in this run:

1. ``pgbench`` TPC-B (``-c clients -j clients``) on a scratch database: the baseline.
2. The ledger's own Python API, the call ``POST /ledger/transfers`` makes (``submit`` of the
   ledger writer, ``payment.ledger.group_commit``), from ``clients`` threads, one transfer per
   call, between 1,000 accounts, twice: first as the issue reads it, **one transfer per
   transaction** (``InlineWriter``, what a sync worker uses: each call commits its own
   transaction), which gives ``single_ratio``; then as a threaded server calls it
   (``GroupCommitter``: each call returns once the commit holding its transfer has returned,
   and concurrent calls share commits), which gives ``single_grouped_ratio``.
3. The same API in its batch form: ``--batch`` transfers per call, each call one transaction of
   its own (``InlineWriter``: no sharing of commits between calls).
4. ``POST /ledger/transfers`` (one transfer a request, unique ids from a wrk Lua script) against
   the service's own ``GET /livez``, on one server set up as ``xsn run`` serves payment: gunicorn,
   2 gthread workers of ``payment.processes.GUNICORN_THREADS`` threads (whose concurrent
   transfer requests share commits: ``payment.ledger.group_commit``), driven by wrk at each of
   ``--connections`` (both endpoints at each count). The server's CPU per request, the
   database backends' CPU per transfer and wrk's own CPU are printed beside each figure. Before
   it the ledger's tables are vacuumed and analysed (``_vacuum_analyze``: the state of a ledger
   in service, and what ``pgbench -i`` does to its own tables).
5. ``xsn ledger check`` over everything the run wrote.

``--http-only`` runs phase 4 alone (on a fresh ledger of the same accounts, vacuumed and
analysed while ``ledger_transfers`` is still empty, unlike a full run's, which has the earlier
phases' transfers; the ledger statement is planned at each execution, so this only shifts what
the first plans see) and the check: the HTTP figure without the other phases' minutes. Its
``RESULT`` says ``"mode": "http_only"``.

Ends with ``RESULT {json}``: ``single_ratio`` and ``batch_ratio`` (transfers/s ÷ pgbench TPC-B
tps; targets ≥ 0.5 and ≥ 5; ``single_grouped_ratio`` beside them, not a target), ``http_ratio``
(HTTP transfers/s ÷ /livez req/s at the last of ``--connections``, the median over ``--rounds``
paired rounds; target ≥ 0.4; ``http_ratios`` has every count, ``http_cpu_ratio`` the server's
CPU per /livez request ÷ per transfer request, ``http_db_cpu_ms`` the database's per transfer
request), the accounts table's pages before and after the HTTP phase and the share of its updates
that were HOT (``accounts_pages_before``, ``accounts_pages_after``, ``accounts_hot_share``), and
``ledger_check_ok``. ``--accounts-fillfactor 100`` (with ``--http-only``) stores the accounts as
they were before migration payment_0004, for an A/B.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from bench._load import WRK_THREAD_NUMBER, WrkResult, cpu_between, database_cpu, gunicorn, scratch_database, wrk
from bench.result import print_result

ACCOUNTS = 1000
WORKERS = 2
KEK = "00112233445566778899aabbccddeeff"


def pgbench_tps(url: str, clients: int, seconds: int) -> float:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", dsn], check=True, capture_output=True)
    out = subprocess.run(["pgbench", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds), dsn],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"tps = ([0-9.]+)", out).group(1))


def _open_accounts(session) -> None:
    from payment.ledger.transfers import AccountSpec, open_account

    for i in range(ACCOUNTS):
        open_account(session, AccountSpec(f"bench:{i}", "suspense", f"bench {i}"))
    session.commit()


def _vacuum_analyze(engine) -> None:
    """VACUUM ANALYZE the ledger's tables, as ``pgbench -i`` does to its own after loading them.

    Why: the database is minutes old, so autovacuum (a pass a minute where it runs; this
    machine's server has it off) has not given it statistics or cleared the dead versions of the
    1,000 account rows the previous phase updated tens of thousands of times. (The ledger's
    statement is planned at each execution since the fourth session of 2026-12-07; before, a
    generic plan made while ``ledger_transfers`` was empty scanned the whole table for taken ids:
    8.4 ms of database CPU for a group of four after 50,000 transfers, against 1.05 analysed.)
    A ledger in service is in the analysed state; so is pgbench.
    """
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE ledger_accounts, ledger_transfers"))


def _set_accounts_fillfactor(engine, fillfactor: int) -> None:
    """Store the accounts at ``fillfactor`` (rewritten at once): ``--accounts-fillfactor 100``
    measures the table as it was before migration payment_0004 gave it 10."""
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"ALTER TABLE ledger_accounts SET (fillfactor = {int(fillfactor)})"))
        connection.execute(text("VACUUM FULL ledger_accounts"))


def accounts_pages(db_url: str) -> dict:
    """The accounts table's pages and its updates so far, how many of them HOT (on the row's own
    page, no new index entry): a few rows updated by every transfer must not grow the table
    between vacuums (docs/ARCHITECTURE.md, payment, "Ledger accounts' pages"). The counters are
    the statistics' (each backend reports its own within a second or when it ends)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            pages, updates, hot = connection.execute(text(
                "SELECT pg_relation_size('ledger_accounts') / current_setting('block_size')::int, n_tup_upd, "
                "n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'ledger_accounts'")).one()
    finally:
        engine.dispose()
    return {"pages": pages, "updates": updates, "hot_updates": hot}


def _run_threads(writer, clients: int, seconds: float, batch: int) -> float:
    """Transfers per second from ``clients`` threads, each submitting ``batch`` transfers at a time."""
    from payment.ledger.transfers import TransferSpec

    done, stop = [0] * clients, time.monotonic() + seconds
    start = threading.Barrier(clients + 1)

    def work(index: int) -> None:
        rng = random.Random(index)
        start.wait()
        while time.monotonic() < stop:
            specs = []
            for _ in range(batch):
                debit, credit = rng.sample(range(ACCOUNTS), 2)
                specs.append(TransferSpec(uuid.uuid4().hex, f"bench:{debit}", f"bench:{credit}",
                                          rng.randint(1, 10_000), "adjustment"))
            results = writer.submit(specs)
            assert all(r.created for r in results)  # fresh ids: each one written now
            done[index] += batch

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - began)


TRANSFER_LUA = WRK_THREAD_NUMBER + """
local counter = 0
function request()
  counter = counter + 1
  local a = math.random(0, 999)
  local b = (a + math.random(1, 998)) % 1000
  local body = string.format('{"transfers": [{"id": "w-%s-%d-%d", "debit_account_id": "bench:%d", '
    .. '"credit_account_id": "bench:%d", "amount": %d, "code": "adjustment"}]}', PREFIX, xsn_thread or 0, counter,
    a, b, math.random(1, 10000))
  return wrk.format("POST", nil, nil, body)
end
"""


@dataclass
class HttpRun:
    """One round at one connection count: /livez then the transfers, back to back."""

    connections: int
    livez: WrkResult
    transfers: WrkResult
    livez_cpu_ms: float  # the server's CPU (all its processes) per request
    transfer_cpu_ms: float
    transfer_db_cpu_ms: float  # the CPU of the database's backends serving the bench's database, per transfer

    @property
    def ratio(self) -> float:
        return self.transfers.requests_per_s / self.livez.requests_per_s if self.livez.requests_per_s else 0.0

    # The server's CPU seconds per second of each endpoint's round: how much of the machine it
    # got. On a shared, saturated machine the transfers round gets less than the /livez round
    # (most of its request threads wait on the group's commit instead of competing for a core),
    # which is why `ratio` falls below the CPU ratio there (docs/ARCHITECTURE.md, payment).
    @property
    def livez_cores(self) -> float:
        return self.livez.requests_per_s * self.livez_cpu_ms / 1000

    @property
    def transfer_cores(self) -> float:
        return self.transfers.requests_per_s * self.transfer_cpu_ms / 1000


def http_phase(db_url: str, seconds: float, connections: list[int], rounds: int) -> list[HttpRun]:
    """``rounds`` rounds per connection count, each /livez then transfers back to back: on a
    shared machine a burst of someone else's load then spoils one round's pair, not the
    figure (the median of the rounds' ratios)."""
    from payment.processes import GUNICORN_THREADS
    from tests.support.suite import TokenFactory

    var = Path(tempfile.mkdtemp(prefix="xsn-bench-payment-"))
    tokens = TokenFactory()
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_LOG_LEVEL="WARNING",
               XSN_PAYMENT_DATABASE_URL=db_url, XSN_OAUTH_JWKS_URL=tokens.write_jwks(var / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_RATELIMIT_ENABLED="false")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    token = tokens.token(sub="bench", scope="payment:admin", aud="xsn:payment", client_id="xsn-finance",
                         lifetime=3600)
    runs = []
    # The same gthread workers and threads as `xsn run` gives payment (payment.processes).
    with gunicorn("payment:create_app()", env=env, workers=WORKERS, threads=GUNICORN_THREADS) as server:
        for count in [c for c in connections for _ in range(rounds)]:
            cpu = server.cpu_seconds()
            livez = wrk(f"{server.url}/livez", duration=seconds, connections=count)
            livez_cpu = server.cpu_seconds() - cpu
            db_before = database_cpu(db_url) or {}
            transfers = wrk(f"{server.url}/ledger/transfers", duration=seconds, connections=count,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                            lua=TRANSFER_LUA.replace("PREFIX", json.dumps(uuid.uuid4().hex[:8])))
            transfer_cpu = server.cpu_seconds() - cpu - livez_cpu
            db_cpu = cpu_between(db_before, database_cpu(db_url))
            runs.append(HttpRun(count, livez, transfers, livez_cpu / max(livez.requests, 1) * 1000,
                                transfer_cpu / max(transfers.requests, 1) * 1000,
                                db_cpu / max(transfers.requests, 1) * 1000))
    return runs


def http_only(args) -> None:
    """Phase 4 alone, on a fresh ledger of the same accounts, vacuumed and analysed (with no
    transfers yet): the issue's HTTP figure without the minutes the other phases take (their
    ``RESULT`` members are left out, not reported as zero)."""
    from common.db import make_engine
    from common.ops.migrate import upgrade

    db_url = scratch_database(args.url, "xsn_bench_payment")
    upgrade("payment", db_url)
    engine = make_engine(db_url)
    with sessionmaker(engine, expire_on_commit=False)() as session:
        _open_accounts(session)
    if args.accounts_fillfactor:
        _set_accounts_fillfactor(engine, args.accounts_fillfactor)
    _vacuum_analyze(engine)
    engine.dispose()
    counts = [int(c) for c in args.connections.split(",")]
    before = accounts_pages(db_url)
    runs = http_phase(db_url, args.seconds, counts, args.rounds)
    print_result({"mode": "http_only", "seconds": args.seconds, "rounds": args.rounds,
                  **_report_http(runs, counts, args.rounds, args.seconds), **_report_pages(before, db_url),
                  "ledger_check_ok": _ledger_check(db_url)})


def _report_pages(before: dict, db_url: str) -> dict:
    """Prints how the accounts table grew over the HTTP phase; returns its ``RESULT`` members."""
    time.sleep(1)  # the server's backends have ended (statistics reported): a last moment to be counted
    after = accounts_pages(db_url)
    updates = after["updates"] - before["updates"]
    hot = (after["hot_updates"] - before["hot_updates"]) / updates if updates else 1.0
    print(f"ledger_accounts over the HTTP phase: {before['pages']} -> {after['pages']} pages, {updates:,} updates, "
          f"{hot:.2%} HOT")
    return {"accounts_pages_before": before["pages"], "accounts_pages_after": after["pages"],
            "accounts_hot_share": round(hot, 4)}


def _report_http(runs: list[HttpRun], counts: list[int], rounds: int, seconds: float) -> dict:
    """Prints phase 4's rounds and medians; returns its ``RESULT`` members."""
    from payment.processes import GUNICORN_THREADS

    print(f"HTTP: gunicorn {WORKERS} gthread workers x {GUNICORN_THREADS} threads, wrk 2 threads, "
          f"{rounds} rounds per endpoint of {seconds:g} s; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for run in runs:
        print(f"  wrk {run.connections} connections: /livez {run.livez.requests_per_s:,.0f} req/s "
              f"(server CPU {run.livez_cpu_ms:.2f} ms/req = {run.livez_cores:.2f} cores, wrk CPU "
              f"{run.livez.wrk_cpu_s:.1f} s), POST /ledger/transfers {run.transfers.requests_per_s:,.0f} req/s "
              f"(server CPU {run.transfer_cpu_ms:.2f} ms/req = {run.transfer_cores:.2f} cores, database CPU "
              f"{run.transfer_db_cpu_ms:.2f} ms/req, wrk CPU "
              f"{run.transfers.wrk_cpu_s:.1f} s, non-2xx "
              f"{run.transfers.non2xx}, errors {run.transfers.errors}, p50 {run.transfers.p50_ms:.1f} ms): "
              f"ratio {run.ratio:.3f}")
    ratios = {count: statistics.median(r.ratio for r in runs if r.connections == count) for count in counts}
    final = [r for r in runs if r.connections == counts[-1]]
    cpu_ratio = statistics.median(r.livez_cpu_ms / r.transfer_cpu_ms for r in final if r.transfer_cpu_ms)
    print(f"median ratio per connection count: {', '.join(f'{c}: {v:.3f}' for c, v in ratios.items())}; server "
          f"CPU per /livez request ÷ per transfer request at {counts[-1]}: {cpu_ratio:.3f}")
    return {"http_transfers_per_s": round(statistics.median(r.transfers.requests_per_s for r in final), 1),
            "livez_per_s": round(statistics.median(r.livez.requests_per_s for r in final), 1),
            "http_ratio": round(ratios[counts[-1]], 3), "http_connections": counts[-1],
            "http_ratios": {str(c): round(v, 3) for c, v in ratios.items()},
            "http_cpu_ratio": round(cpu_ratio, 3),
            "http_db_cpu_ms": round(statistics.median(r.transfer_db_cpu_ms for r in final), 3),
            "http_non2xx": sum(run.transfers.non2xx + run.transfers.errors for run in runs),
            "load_average": round(os.getloadavg()[0], 2)}


def _ledger_check(db_url: str) -> bool:
    """``xsn ledger check`` over everything the run wrote (printed); whether it passed."""
    check = subprocess.run([sys.executable, "-m", "common.ops.cli", "ledger", "check"], capture_output=True, text=True,
                           env=dict(os.environ, XSN_PAYMENT_DATABASE_URL=db_url, XSN_KEK=KEK, XSN_LOG_LEVEL="WARNING"))
    print(f"xsn ledger check: exit {check.returncode}: {check.stdout.strip().splitlines()[-1] if check.stdout else ''}")
    return check.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("XSN_TEST_DATABASE_URL",
                                                        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--connections", default="16,64", help="wrk connection counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="HTTP rounds per connection count (median ratio)")
    parser.add_argument("--http-only", action="store_true",
                        help="only phase 4 (and the ledger check): no pgbench, no ledger API phases")
    parser.add_argument("--accounts-fillfactor", type=int, choices=range(10, 101), metavar="10..100",
                        help="with --http-only: store the accounts at this fillfactor (the migrations give 10)")
    args = parser.parse_args()
    if args.accounts_fillfactor is not None and not args.http_only:
        parser.error("--accounts-fillfactor needs --http-only (the other phases use the migrations' accounts)")
    if args.http_only:
        return http_only(args)

    from common.db import make_engine
    from common.ops.migrate import upgrade

    tps = pgbench_tps(scratch_database(args.url, "xsn_bench_pgbench"), args.clients, args.seconds)
    print(f"pgbench TPC-B, {args.clients} clients: {tps:,.0f} tps")

    db_url = scratch_database(args.url, "xsn_bench_payment")
    upgrade("payment", db_url)
    engine = make_engine(db_url, pool_size=args.clients + 2)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        _open_accounts(session)

    from payment.ledger.group_commit import GroupCommitter, InlineWriter
    from payment.ledger.group_write import OneStatementWriter

    # Built as payment.api._ledger_writer builds them for a threaded and for a sync worker.
    # One transfer per transaction (the issue's reading of "single"): no commit is shared.
    single = _run_threads(InlineWriter(factory, write_committed=OneStatementWriter(engine)), args.clients,
                          args.seconds, 1)
    print(f"ledger API, one transfer per call and transaction, {args.clients} threads: {single:,.0f} transfers/s "
          f"({single / tps:.2f}x pgbench)")
    committer = GroupCommitter(factory, write_committed=OneStatementWriter(engine))
    grouped = _run_threads(committer, args.clients, args.seconds, 1)
    print(f"ledger API, one transfer per call, concurrent calls sharing commits (group commit), {args.clients} "
          f"threads: {grouped:,.0f} transfers/s ({grouped / tps:.2f}x pgbench)")
    batch = _run_threads(InlineWriter(factory, write_committed=OneStatementWriter(engine)), args.clients,
                         args.seconds, args.batch)
    print(f"ledger API, {args.batch} transfers per call and transaction, {args.clients} threads: {batch:,.0f} "
          f"transfers/s ({batch / tps:.2f}x pgbench)")

    counts = [int(c) for c in args.connections.split(",")]
    _vacuum_analyze(engine)  # after the phases above, before the servers prepare their statements
    before = accounts_pages(db_url)
    runs = http_phase(db_url, args.seconds, counts, args.rounds)
    http = {**_report_http(runs, counts, args.rounds, args.seconds), **_report_pages(before, db_url)}
    engine.dispose()
    print_result({"pgbench_tps": round(tps, 1), "single_per_s": round(single, 1), "batch_per_s": round(batch, 1),
                  "single_ratio": round(single / tps, 3), "single_grouped_per_s": round(grouped, 1),
                  "single_grouped_ratio": round(grouped / tps, 3), "batch_ratio": round(batch / tps, 3),
                  **http, "ledger_check_ok": _ledger_check(db_url)})


if __name__ == "__main__":
    sys.exit(main())
