"""Benchmark the licences node: ``python -m bench.licenses``.

Run from the repository root (needs PostgreSQL and Debian's ``wrk``)::

    python -m bench.licenses [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
                             [--seconds 10] [--connections 32] [--workers 2] [--threads N] [--no-sqlite]
                             [--verify-only] [--hot-codes] [--warmup-seconds 2]
                             [--trees DIR[,DIR...] --rounds 3]

The licences node runs as production runs it: on PostgreSQL (a fresh database
``xsn_bench_licenses_<pid>`` this run creates, migrates, seeds and drops; ``--postgres`` names the
server, default ``XSN_TEST_DATABASE_URL`` or the local one), served the way ``xsn run`` serves
every service (gunicorn gthread workers, ``--workers`` × the threads ``xsn run`` gives the
licences node, ``licenses.processes.GUNICORN_THREADS``, unless ``--threads``; keep-alive), with the
server's own durability settings (``synchronous_commit`` is reported, and must be ``on``: a use
record is on disk before the answer). The seal node runs beside it the same way (SQLite, the
threads ``xsn run`` gives it, ``seal.processes.GUNICORN_THREADS``, whatever ``--threads`` says; the
licences node caches its verifications). Licences are issued sealed by the real seal node, then
one run measures:

* the licences server's trivial endpoint (``/livez``) with ``wrk``;
* online verification on the same server (``POST /verify``: token, authorisation with its
  conditional use count, licence status and validity, document digest, seal signature through
  the seal node's ``/verify`` with the node's cache, use record, commit) with ``wrk`` and the
  same connections, each wrk thread presenting its own share of the authorisation codes in turn
  (four codes per connection); the ratio of the two is ``verify_ratio`` (target ≥ 0.4). Each
  endpoint is loaded for ``--warmup-seconds`` (2) unmeasured first, so both are measured as the
  server runs once started (``--hot-codes --warmup-seconds 0`` measures as before 2026-12-07).
  The accepted use records in the database are counted afterwards (``use_records_ok``: at least
  one per answered verification, the warm-up's included). Beside the server's CPU per request,
  the CPU of the PostgreSQL backends serving the bench's database per verification
  (``database_cpu_ms_per_verify``, from ``/proc`` when the server is local): they share the
  cores with the server, which ``/livez`` never asks of them;
* unless ``--no-sqlite``, the same two measurements against a licences server of the same shape
  on SQLite (``PRAGMA synchronous=FULL``, the development default): ``verify_ratio_sqlite``, a
  side figure (SQLite commits one writer at a time, each waiting for its own disk sync);
* offline verification of a QR code in this process, one thread (``offline_verify_per_s``,
  target ≥ 2,000 per core);
* bulk issuance (on PostgreSQL) of a job of ``--bulk-rows`` (default 5,000) rows in this process,
  sealed through the seal node's batch API when it has one (``POST /seals/<id>/sign-batch``),
  otherwise with the in-process seal (said in ``bulk_seal``); ``bulk_issue_ratio`` = licences per
  second ÷ raw SM2 signatures per second (target ≥ 0.3).

``--verify-only`` measures the PostgreSQL ``/livez`` and online verification only (no SQLite side
figure, offline or bulk): the quick A/B of a change to the verification path.

``--trees A,B`` (with ``--verify-only``) is that A/B in one command, alternated as a shared machine
needs: the licences server is started from each tree in turn (its own checkout of the code, e.g.
``git worktree add`` or ``git archive | tar -x``; it must use the same migrations), ``--rounds``
times, each round starting from the next tree (A B, B A, ...), each start measured as above, all
against one database, seal node and set of codes prepared by this tree. Each run prints a line,
then each tree's medians; ``RESULT`` has per tree, labelled A, B, ... in the order given, each
figure's median and its rounds' values (``ab_A_server_cpu_ms_per_verify``,
``ab_A_server_cpu_ms_per_verify_runs``). When other work shares the cores, compare the server's CPU
per verification, not the ratio.

wrk and the services share the machine's cores (wrk's own CPU seconds are reported), so the
figures are conservative. The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

from bench._licenses_side import bulk, offline, raw_sm2_rate
from bench._licenses_trees import alternation, print_alternation
from bench._load import (
    cpu_between,
    database_cpu,
    drop_database,
    gunicorn,
    machine_busy_seconds,
    scratch_database,
    wrk,
    wrk_version,
)
from bench.result import print_result
from common.ops.launcher import THREADS, service_concurrency
from tests.support.suite import TokenFactory

KEK = "00112233445566778899aabbccddeeff"
ISSUER_CLIENT = "xsn-licenses-demo-issuer"
WINDOW = "bench-window"
DATABASE = f"xsn_bench_licenses_{os.getpid()}"  # created and dropped by each run


# The seal node's seed makes the departments' licence seals and grants them to xsn-licenses.
SEAL_SETUP = """
import seal
from seal.seed import seed
seed(seal.create_app())
"""

# The codes each verification presents: every wrk thread goes round its own share of them, one
# code per request in turn (setup() numbers the threads; each thread runs its own copy of the
# script). Windows seldom present one code at the same instant; when both threads went round the
# same codes in step, every code was in flight twice at once, on both worker processes, whose
# group statements then waited for each other's row locks and commits (``--hot-codes`` keeps that
# load, for comparison). CODES_PER_CONNECTION codes per connection: a thread comes back to a
# code after that many rounds of its connections, seldom while the code's last use is in flight.
WRK_THREADS = 2
CODES_PER_CONNECTION = 4
VERIFY_LUA = """
local codes = {CODES}
local threads_started = 0
function setup(thread)
  threads_started = threads_started + 1
  thread:set("xsn_thread", threads_started)
end
local share = math.floor(#codes / THREADS)
local n = 0
request = function()
  n = n + 1
  local first = HOT and 0 or (xsn_thread - 1) * share
  return wrk.format(nil, nil, nil, '{"code": "' .. codes[first + n % share + 1] .. '"}')
end
"""


def _code_count(args) -> int:
    """How many licences (one authorisation each) the verifications go round."""
    return args.connections if args.hot_codes else args.connections * CODES_PER_CONNECTION


def _migrate(service: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate", service], env=env, check=True,
                   capture_output=True)


def _prepare(env: dict, tokens: TokenFactory, seal_url: str, count: int):
    """The licences database of ``env`` migrated and seeded, with ``count`` licences issued in this
    process (sealed by the seal node) and a window's authorisation for each; returns
    ``(app, codes, issuer bearer, holder bearer)``."""
    import licenses
    from common.http import ServiceClient
    from common.peers.seal_client import HttpSealClient
    from common.values.codes import CreditCode
    from licenses.holders import Holder
    from licenses.issuing import Deps
    from licenses.seed import DEMO_PEOPLE, seed

    _migrate("licenses", env)
    os.environ.update({k: v for k, v in env.items() if k.startswith("XSN_")})
    app = licenses.create_app({"LICENSES_HOLDER_DIRECTORY": "memory", "LICENSES_NOTIFIER": "memory"})
    tokens.install(app)
    seed(app)
    node = app.extensions["licenses"]
    seal = HttpSealClient(ServiceClient(seal_url, token_provider=lambda: tokens.token(
        sub="xsn-licenses", client_id="xsn-licenses", scope="seal:sign", aud="xsn:seal", lifetime=3600)))
    node["deps"] = Deps(cipher=node["deps"].cipher, seal=seal)
    org = CreditCode.build("91610113MA6TXX001").value  # the demo organisation (identity.seed)
    node["directory"].holders["p-zhao"] = Holder("p-zhao", DEMO_PEOPLE["赵六"], (org,))
    client = app.test_client()
    issuer = tokens.bearer(sub=ISSUER_CLIENT, client_id=ISSUER_CLIENT, scope="licenses:issue", aud="xsn:licenses",
                           lifetime=3600)
    holder = tokens.bearer(sub="p-zhao", scope="licenses:holder", aud="xsn:licenses", lifetime=3600)
    codes = []
    for i in range(count):
        issued = client.post("/licences", headers=issuer, json={
            "type_code": "food_business_license", "holder_code": org, "holder_name": "西安市示范科技有限公司",
            "fields": {"operator_name": "西安市示范科技有限公司", "legal_representative": "赵六", "address": "雁塔区",
                       "premises": f"科技路{i}号", "business_type": "餐饮服务经营者", "business_scope": "热食类"}})
        assert issued.status_code == 201, issued.get_json()
        auth = client.post("/my/authorisations", headers=holder, json={
            "licence_id": issued.get_json()["id"], "fields": ["operator_name", "business_scope"], "purpose": "压测",
            "audience": WINDOW, "minutes": 60, "max_uses": 1_000_000_000})
        assert auth.status_code == 201, auth.get_json()
        codes.append(auth.get_json()["code"])
    return app, codes, issuer, holder


ACCEPTED = "SELECT count(*) FROM use_records WHERE outcome = 'accepted'"


def _scalar(db_url: str, query: str):
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar_one()
    finally:
        engine.dispose()


def _measure(env: dict, args, tokens: TokenFactory, codes: list[str], tree: str | None = None) -> dict:
    """``/livez`` then ``POST /verify`` on one licences server served like ``xsn run``'s (its code
    from ``tree``, a checkout's root, when given; else this one's)."""
    window = tokens.token(sub=WINDOW, client_id=WINDOW, scope="licenses:verify", aud="xsn:licenses", lifetime=3600)
    headers = {"Authorization": f"Bearer {window}", "Content-Type": "application/json"}
    lua = (VERIFY_LUA.replace("THREADS", str(1 if args.hot_codes else args.wrk_threads))
           .replace("HOT", str(args.hot_codes).lower()).replace("CODES", ",".join(f'"{c}"' for c in codes)))
    db_url = env.get("XSN_LICENSES_DATABASE_URL")
    with gunicorn("licenses:create_app()", env=env, workers=args.workers, threads=args.licences_threads,
                  ready_path="/readyz", cwd=tree) as server:
        warmup = None
        if args.warmup_seconds:
            # Unmeasured, each endpoint: a worker's first verifications open its database
            # connections, ask the seal node about each signature and go the whole way once per
            # code; that start cost 0.8 s of an 8 s phase and made its p99 (docs/ARCHITECTURE.md,
            # licences, eighth pass). What is measured is the server as it runs after its start.
            wrk(f"{server.url}/livez", duration=args.warmup_seconds, connections=args.connections,
                threads=args.wrk_threads)
            warmup = wrk(f"{server.url}/verify", duration=args.warmup_seconds, connections=args.connections,
                         threads=args.wrk_threads, method="POST", headers=headers, lua=lua)
        cpu_start, busy_start = server.cpu_seconds(), machine_busy_seconds()
        trivial = wrk(f"{server.url}/livez", duration=args.seconds, connections=args.connections,
                      threads=args.wrk_threads)
        cpu_mid, busy_between = server.cpu_seconds(), machine_busy_seconds()
        db_before = database_cpu(db_url)
        verify = wrk(f"{server.url}/verify", duration=args.seconds, connections=args.connections,
                     threads=args.wrk_threads, method="POST",
                     headers=headers, lua=lua)
        cpu_end, busy_end = server.cpu_seconds(), machine_busy_seconds()
        db_cpu = None if db_before is None else cpu_between(db_before, database_cpu(db_url))
    return {"database_cpu_ms_per_verify": None if db_cpu is None else _per_request(db_cpu, verify.requests),
            "trivial": trivial, "verify": verify, "warmup_verify": warmup,
            "ratio": verify.requests_per_s / trivial.requests_per_s,
            "server_cpu_ms_per_livez": _per_request(cpu_mid - cpu_start, trivial.requests),
            "server_cpu_ms_per_verify": _per_request(cpu_end - cpu_mid, verify.requests),
            # cores: CPU seconds per second of the phase (the server's; the whole machine's, which
            # adds wrk, PostgreSQL, the seal node and whatever else runs)
            "server_cores_livez": round((cpu_mid - cpu_start) / trivial.duration_s, 2),
            "server_cores_verify": round((cpu_end - cpu_mid) / verify.duration_s, 2),
            "machine_cores_livez": _cores(busy_start, busy_between, trivial.duration_s),
            "machine_cores_verify": _cores(busy_between, busy_end, verify.duration_s)}


def _cores(busy_start: float | None, busy_end: float | None, seconds: float) -> float | None:
    """The machine's busy cores over a phase; ``None`` without ``/proc/stat``."""
    return None if busy_start is None or busy_end is None else round((busy_end - busy_start) / seconds, 2)


def _per_request(cpu_s: float, requests: int) -> float | None:
    """Milliseconds of the server's CPU (arbiter and workers, from /proc) per answered request."""
    return round(1000 * cpu_s / requests, 3) if requests else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get(
        "XSN_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server's URL (any database on it); the bench creates and drops its own there")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32,
                        help="wrk's keep-alive connections (2 wrk threads, 1 if 1 connection)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="gthread threads per licences worker (default: what xsn run uses, "
                             "licenses.processes.GUNICORN_THREADS)")
    parser.add_argument("--hot-codes", action="store_true",
                        help="the verifications go round as many codes as connections, both wrk threads the same "
                             "ones in step (every code in flight twice at once), as this bench did until "
                             "2026-12-07: two windows presenting the same codes together")
    parser.add_argument("--warmup-seconds", type=int, default=2,
                        help="unmeasured load on each endpoint before its measurement, whole seconds as wrk runs "
                             "them (0: none, as this bench did until 2026-12-07)")
    parser.add_argument("--bulk-rows", type=int, default=5000)
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite side figure")
    parser.add_argument("--verify-only", action="store_true",
                        help="only /livez and online verification on PostgreSQL (no SQLite, offline or bulk)")
    parser.add_argument("--trees", type=lambda text: [t for t in text.split(",") if t],
                        help="with --verify-only: comma-separated checkouts whose licences servers are measured "
                             "in turn, --rounds times, on one database and seal node (an alternated A/B)")
    parser.add_argument("--rounds", type=int, default=3, help="with --trees: how many times each tree is measured")
    args = parser.parse_args()
    if args.warmup_seconds < 0:
        parser.error("--warmup-seconds must be 0 or more")
    if args.trees is not None:
        if not args.verify_only:
            parser.error("--trees needs --verify-only")
        if args.rounds < 1:
            parser.error("--rounds must be 1 or more")
        missing = [t for t in args.trees if not (Path(t) / "licenses" / "__init__.py").is_file()]
        if missing or not args.trees:
            parser.error(f"--trees: not checkouts of this repository: {', '.join(missing) or '(none given)'}")
        args.trees = [str(Path(t).resolve()) for t in args.trees]
        if len(set(args.trees)) != len(args.trees):
            parser.error("--trees: a tree given twice")
        if len(args.trees) > 26:  # labelled A to Z in the summary
            parser.error("--trees: at most 26 trees")
    # What wrk runs (it has no thread without a connection), and what the script shares the codes
    # among: with more in the script than ran, the codes of the threads missing were never used.
    args.wrk_threads = max(1, min(WRK_THREADS, args.connections))
    # as xsn run chooses: XSN_LICENSES_GUNICORN_THREADS, else licenses.processes.GUNICORN_THREADS
    args.licences_threads = args.threads or service_concurrency("licenses", dict(os.environ), args.workers, THREADS)[1]
    if not args.postgres.startswith("postgresql"):
        raise SystemExit("--postgres must be a PostgreSQL URL")

    var = Path(tempfile.mkdtemp(prefix="xsn-bench-licenses-"))
    tokens = TokenFactory()
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_OAUTH_JWKS_URL=tokens.write_jwks(var / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_LOG_LEVEL="WARNING", XSN_LICENSES_AUTH_MAX_USES="1000000000",
               XSN_RATELIMIT_ENABLED="false")
    for key in ("XSN_SEAL_DATABASE_URL", "XSN_LICENSES_DATABASE_URL", "XSN_SQLITE_SYNCHRONOUS",
                "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(key, None)
        os.environ.pop(key, None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("XSN_")})
    db_url = scratch_database(args.postgres, DATABASE)
    pg_env = dict(env, XSN_LICENSES_DATABASE_URL=db_url)
    try:
        _migrate("seal", env)
        subprocess.run([sys.executable, "-c", SEAL_SETUP], env=env, check=True, capture_output=True)
        # the seal node as xsn run serves it (seal.processes.GUNICORN_THREADS), whatever --threads says
        seal_workers, args.seal_threads = service_concurrency("seal", dict(os.environ), args.workers, THREADS)
        with gunicorn("seal:create_app()", env=env, workers=seal_workers, threads=args.seal_threads,
                      ready_path="/readyz") as seal_server:
            env["XSN_SEAL_URL"] = pg_env["XSN_SEAL_URL"] = seal_server.url
            figures = _run(args, tokens, seal_server.url, env, pg_env, db_url)
    finally:
        with contextlib.suppress(Exception):
            drop_database(args.postgres, DATABASE)
        shutil.rmtree(var, ignore_errors=True)
    if "ab_runs" in figures:
        print_alternation(figures.pop("ab_runs"), figures["ab"])
        print_result(figures)
        return
    print(f"wrk: {figures['wrk']}, {args.connections} connections, {args.wrk_threads} threads, "
          f"{args.seconds:.0f} s a run; "
          f"gunicorn {args.workers} gthread workers x {args.licences_threads} threads "
          f"(the seal node's: x {args.seal_threads})")
    if "raw_sm2_sign_per_s" in figures:
        print(f"raw SM2 sign/s (1 thread): {figures['raw_sm2_sign_per_s']:,.0f}")
    print(f"PostgreSQL (synchronous_commit={figures['pg_synchronous_commit']}, fsync={figures['pg_fsync']}): "
          f"/livez {figures['trivial_per_s']:,.0f} req/s; online verify {figures['verify_per_s']:,.0f} req/s "
          f"(non-2xx {figures['verify_non_2xx']}, errors {figures['verify_errors']}, "
          f"p50 {figures['verify_p50_ms']} ms, "
          f"server CPU {figures['server_cpu_ms_per_verify']} ms/verify, "
          f"{figures['server_cpu_ms_per_livez']} ms/livez; database backends "
          f"{figures['database_cpu_ms_per_verify']} ms/verify); "
          f"use records ok: {figures['use_records_ok']}")
    print(f"cores busy, /livez then verify: server {figures['server_cores_livez']} / {figures['server_cores_verify']}, "
          f"whole machine {figures['machine_cores_livez']} / {figures['machine_cores_verify']} "
          f"(of {os.cpu_count()})")
    print(f"verify_ratio: {figures['verify_ratio']:.3f} (target >= 0.4)")
    if "verify_ratio_sqlite" in figures:
        print(f"SQLite synchronous=FULL, same server shape: /livez {figures['sqlite_trivial_per_s']:,.0f} req/s, "
              f"verify {figures['sqlite_verify_per_s']:,.0f} req/s, ratio {figures['verify_ratio_sqlite']:.3f}")
    if "offline_verify_per_s" in figures:
        print(f"offline verifications/s (1 thread): {figures['offline_verify_per_s']:,.0f} "
              f"(target >= 2,000 per core); {figures['offline_cpu_us_per_verify']:.0f} us of CPU each")
    if "bulk_issue_ratio" in figures:
        print(f"bulk: {figures['bulk_rows']} rows, validated in {figures['bulk_validate_s']:.1f} s, issued at "
              f"{figures['bulk_issue_per_s']:,.0f}/s with the {figures['bulk_seal']} seal; "
              f"bulk_issue_ratio {figures['bulk_issue_ratio']:.3f} (target >= 0.3)")
    print(f"load average (1, 5, 15 min): {figures['loadavg']}")
    print_result(figures)


def _run(args, tokens: TokenFactory, seal_url: str, env: dict, pg_env: dict, db_url: str) -> dict:
    figures: dict = {}
    raw_before = None if args.verify_only else raw_sm2_rate(2.0)
    if not (args.no_sqlite or args.verify_only):
        _app, sqlite_codes, _issuer, _holder = _prepare(env, tokens, seal_url, _code_count(args))
        figures["sqlite"] = _measure(env, args, tokens, sqlite_codes)
    app, codes, issuer, holder = _prepare(pg_env, tokens, seal_url, _code_count(args))
    sync_commit, fsync = _scalar(db_url, "SHOW synchronous_commit"), _scalar(db_url, "SHOW fsync")
    if args.trees:
        # Each round starts from the next tree (A B, B A, ...): every run adds use records to the
        # one database, so a fixed order would always give the later tree the larger table.
        order = [args.trees[n % len(args.trees):] + args.trees[:n % len(args.trees)] for n in range(args.rounds)]
        runs = [{"tree": tree, "round": n, **_pg_figures(pg_env, args, tokens, codes, db_url, tree)}
                for n in range(args.rounds) for tree in order[n]]
        # the runs are printed one by one; RESULT is flat (bench.result): the summary per tree
        figures = {"ab_runs": runs, "ab": alternation(runs, args.trees)}
    else:
        figures = {**_pg_figures(pg_env, args, tokens, codes, db_url), **_sqlite_figures(figures.get("sqlite"))}
    figures.update(pg_synchronous_commit=sync_commit, pg_fsync=fsync)
    if not args.verify_only:
        figures.update(offline(app, holder))
        figures.update(bulk(args, app, issuer, raw_before))
    figures.update({
        "workers": args.workers, "threads": args.licences_threads, "seal_threads": args.seal_threads,
        "connections": args.connections, "wrk_threads": args.wrk_threads, "codes": _code_count(args),
        "hot_codes": args.hot_codes,
        "warmup_s": args.warmup_seconds,
        "wrk": wrk_version(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()), "date": date.today().isoformat()})
    return figures


def _pg_figures(pg_env: dict, args, tokens: TokenFactory, codes: list[str], db_url: str,
                tree: str | None = None) -> dict:
    """One PostgreSQL server start measured (:func:`_measure`), as ``RESULT`` reports it."""
    before = _scalar(db_url, ACCEPTED)
    pg = _measure(pg_env, args, tokens, codes, tree)
    # Every verification answered 2xx, the warm-up's too, recorded an accepted use (a request
    # still in flight when wrk stopped may have recorded one more: at least, not equal).
    answered = [w.requests - w.non2xx for w in (pg["verify"], pg["warmup_verify"]) if w is not None]
    uses_ok = _scalar(db_url, ACCEPTED) - before >= sum(answered)
    trivial, verify = pg["trivial"], pg["verify"]
    return {
        "verify_ratio": round(pg["ratio"], 4), "trivial_per_s": round(trivial.requests_per_s, 1),
        "verify_per_s": round(verify.requests_per_s, 1), "verify_non_2xx": verify.non2xx,
        "verify_errors": verify.errors, "verify_p50_ms": verify.p50_ms, "verify_p99_ms": verify.p99_ms,
        "trivial_p50_ms": trivial.p50_ms,
        **{k: v for k, v in pg.items() if k.startswith(("server_", "machine_", "database_"))},
        "wrk_cpu_s_verify": round(verify.wrk_cpu_s, 2), "use_records_ok": uses_ok,
        "loadavg_1min": round(os.getloadavg()[0], 2)}


def _sqlite_figures(sqlite: dict | None) -> dict:
    if sqlite is None:
        return {}
    return {"verify_ratio_sqlite": round(sqlite["ratio"], 4),
            "sqlite_trivial_per_s": round(sqlite["trivial"].requests_per_s, 1),
            "sqlite_verify_per_s": round(sqlite["verify"].requests_per_s, 1),
            "sqlite_verify_non_2xx": sqlite["verify"].non2xx,
            "sqlite_server_cpu_ms_per_verify": sqlite["server_cpu_ms_per_verify"]}


if __name__ == "__main__":
    main()
