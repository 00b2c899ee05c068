"""Benchmark the seal node end to end: ``python -m bench.seal``.

Starts the seal service the way ``xsn run`` serves it (gunicorn gthread workers with the seal
node's own thread count, 16: ``seal.processes``; keep-alive: ``common.ops.launcher.gunicorn_argv``;
2 workers by default)
on a scratch PostgreSQL database, as production runs the seal node (created on the server of
``--database-url``, default ``postgresql://postgres@127.0.0.1:5432`` or ``XSN_BENCH_POSTGRES_URL``,
and dropped at the end; ``--sqlite`` runs on a SQLite file instead) and a temporary var dir
(migrated, seeded, trusting a local test JWKS pinned in a file), and drives it with Debian
``wrk`` (a compiled, event-driven load generator; ``apt-get install wrk``, or ``XSN_WRK``),
whose Lua script gives every request its own document digests and ``Idempotency-Key``. In one
run it measures:

* raw SM2 signing per second (``common.crypto.gm``, one thread, this process, before and after);
* single signatures per second end to end (``POST /seals/<id>/sign``: HTTP, token verification,
  grant check, SES_Signature build and SM2 signature, log append, database write and commit);
* signatures per second through the batch API (``POST /seals/<id>/sign-batch``, 100 digests
  per request, each its own SES_Signature and log entry);
* verification requests per second (all five checks);
* proof generation time at 10^3, 10^5, 10^6 leaves (``bench.seal_log.measure_proof_growth``,
  unless ``--skip-proofs``).

wrk shares the machine with the server, so each phase prints the CPU seconds wrk used, the CPU
of the seal's gunicorn processes (the arbiter and its workers) and of the PostgreSQL backends
serving them per signature, and how busy the machine was. Only 2xx answers count, and
the signatures counted are checked against the growth of the signature log.

The log keeps its durability on either database: every signature and its log entry are
committed before the answer (PostgreSQL's ``synchronous_commit`` stays on; concurrent commits
share WAL flushes, which is why the threaded workers matter). With ``--sqlite``,
``XSN_SQLITE_SYNCHRONOUS`` in the environment is passed on to the service (see ``common.db``).

The last line is ``RESULT {json}`` with ``sign_ratio`` (single signatures ÷ raw SM2 signing),
``batch_sign_ratio`` (batch signatures ÷ raw SM2 signing) and ``proof_growth`` (proof time at
10^6 ÷ at 10^3, or null with ``--skip-proofs``). Targets: 0.15, 0.6, 2.

wrk is driven by ``bench._load.wrk`` (the signing phases' Lua script passed as ``lua=``), as the
other benchmarks drive it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy.engine import make_url

from bench._load import (
    WRK_THREAD_NUMBER,
    cpu_between,
    database_cpu,
    drop_database,
    scratch_database,
    tree_cpu_seconds,
    wrk,
    wrk_path,
)
from bench.result import print_result
from bench.seal_log import measure_proof_growth
from common.crypto import gm
from common.ops.launcher import THREADS, gunicorn_argv, service_concurrency
from tests.support.suite import TokenFactory, free_port, process, wait_ready

KEK = "00112233445566778899aabbccddeeff"
BATCH = 100
TARGETS = {"sign_ratio": 0.15, "batch_sign_ratio": 0.6, "proof_growth": 2.0}
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"

# Every request signs anew: a fresh Idempotency-Key and fresh digests (a run prefix, the wrk
# thread's number, a counter). BATCH = 0 sends {"digest"}, otherwise {"items": [BATCH digests]}.
SIGNING = WRK_THREAD_NUMBER + """
local prefix, path, batch = "PREFIX", "PATH", BATCHSIZE
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "AUTH"
local counter = 0
local function digest(n)
  return string.format('{"digest":"%s%08x%08x"}', prefix, xsn_thread or 0, n)
end
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("%s-%d-%d", prefix, xsn_thread or 0, counter)
  local body
  if batch == 0 then
    body = digest(counter)
  else
    local parts = {}
    for i = 1, batch do parts[i] = digest(counter * batch + i) end
    body = '{"items":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format(nil, path, nil, body)
end
"""


def raw_sm2(seconds: float) -> tuple[float, float]:
    """SM2 signatures per second on one thread, and CPU milliseconds per signature."""
    key = gm.SM2PrivateKey.generate()
    message = bytes(range(20))
    key.sign(message)
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        key.sign(message)
        count += 1
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1000


def run_wrk(url: str, *, seconds: float, connections: int, threads: int, server_pid: int,
            db_url: str | None = None, **request) -> dict:
    """One wrk run (``bench._load.wrk``; ``request``: its ``lua=`` script, or ``method=``,
    ``body=``, ``headers=``): its summary, the CPU wrk used, the CPU of the server (its gunicorn
    arbiter and workers: ``tree_cpu_seconds``) and of the database's backends serving them
    (``db_url``'s, when the server is on this machine: :func:`bench._load.database_cpu`)."""
    db_before = database_cpu(db_url)
    server_cpu, started = tree_cpu_seconds(server_pid), time.perf_counter()
    result = wrk(url, duration=seconds, connections=connections, threads=threads, timeout_s=30, **request)
    elapsed = time.perf_counter() - started
    server_cpu = tree_cpu_seconds(server_pid) - server_cpu
    db_cpu = 0.0 if db_before is None else cpu_between(db_before, database_cpu(db_url))
    ok = result.requests - result.non2xx
    return {"rate": ok / result.duration_s, "ok": ok, "errors": result.non2xx + result.errors,
            "duration_s": result.duration_s, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "server_cpu_s": server_cpu, "wrk_cpu_s": result.wrk_cpu_s, "db_cpu_s": db_cpu,
            "cpu_busy": (server_cpu + result.wrk_cpu_s + db_cpu) / (elapsed * (os.cpu_count() or 1))}


def signing_script(path: str, token: str, batch: int) -> str:
    prefix = os.urandom(24).hex()  # 48 hex digits, + 16 per request = a 64-digit SM3-shaped digest
    return (SIGNING.replace("PREFIX", prefix).replace("PATH", path).replace("BATCHSIZE", str(batch))
            .replace("AUTH", f"Bearer {token}"))


class ScratchPostgres:
    """A throw-away database on the given PostgreSQL server."""

    def __init__(self, url: str) -> None:
        self.admin_url = make_url(url)
        if self.admin_url.drivername == "postgresql":  # the driver the services use
            self.admin_url = self.admin_url.set(drivername="postgresql+psycopg")
        self.name = f"xsn_bench_seal_{os.urandom(4).hex()}"
        self.url = scratch_database(self.admin_url.render_as_string(hide_password=False), self.name)

    def drop(self) -> None:
        drop_database(self.admin_url.render_as_string(hide_password=False), self.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    # Enough connections to keep every worker thread busy (2 x 4 = 8 at a time) with requests
    # queued behind them, so commits can share WAL flushes as they do under production load.
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for single requests")
    parser.add_argument("--batch-connections", type=int, default=8, help="wrk connections for batches")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=os.environ.get("XSN_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="the PostgreSQL server to make the scratch database on (default: %(default)s)")
    parser.add_argument("--sqlite", action="store_true", help="run the service on SQLite instead of PostgreSQL")
    parser.add_argument("--skip-proofs", action="store_true")
    # As `xsn run` serves seal (seal.processes may set its own; else the launcher's default).
    parser.add_argument("--threads", type=int, default=service_concurrency("seal", dict(os.environ), 2, THREADS)[1],
                        help="threads per gthread worker (default: as xsn run serves seal, %(default)s)")
    args = parser.parse_args()
    wrk_path()  # fail early, with the install hint

    var = Path(tempfile.mkdtemp(prefix="xsn-bench-seal-"))
    tokens = TokenFactory()
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_OAUTH_JWKS_URL=tokens.write_jwks(var / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_LOG_LEVEL="WARNING", XSN_SEAL_SIGN_BATCH_MAX=str(BATCH))
    env.pop("XSN_SEAL_DATABASE_URL", None)
    scratch = None if args.sqlite else ScratchPostgres(args.database_url)
    if scratch is not None:
        env["XSN_SEAL_DATABASE_URL"] = scratch.url
    try:
        subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate", "seal"], env=env, check=True,
                       capture_output=True)
        seed = ("import seal, seal.seed; app = seal.create_app()\nwith app.app_context(): seal.seed.seed(app)")
        subprocess.run([sys.executable, "-c", seed], env=env, check=True, capture_output=True)
        port = free_port()
        # Served exactly as `xsn run` serves it (access log included, here thrown away).
        argv = gunicorn_argv("seal:create_app()", port, args.workers, "xsn-bench-seal", threads=args.threads)
        with process(argv, env=env) as server:
            wait_ready(f"http://127.0.0.1:{port}/readyz", 30, proc=server, interval=0.1)
            figures = _run(args, tokens, port, server.pid, scratch.url if scratch else None)
    finally:
        if scratch is not None:
            scratch.drop()

    proofs = None if args.skip_proofs else measure_proof_growth()
    _report(args, figures, proofs)


def _logged(base: str, auditor: dict[str, str], seal_id: str) -> int:
    """Entries of the seal in the signature log (the search counts up to the log's head)."""
    answer = requests.get(f"{base}/log/search", params={"seal_id": seal_id, "per_page": 1}, headers=auditor,
                          timeout=30)
    return int(answer.json()["total"])


def _run(args, tokens: TokenFactory, port: int, server_pid: int, db_url: str | None) -> dict:
    base = f"http://127.0.0.1:{port}"
    token = tokens.token(sub="bench", scope="seal:sign", client_id="xsn-licenses", lifetime=3600)
    headers = {"Authorization": f"Bearer {token}"}
    auditor = tokens.bearer(sub="bench-auditor", scope="audit:read", client_id="bench", lifetime=3600)
    seals = requests.get(f"{base}/seals/granted", headers=headers, timeout=5).json()
    seal_id = next(s["id"] for s in seals if s["kind"] == "license")
    single, many = f"/seals/{seal_id}/sign", f"/seals/{seal_id}/sign-batch"

    def phase(path: str, batch: int, seconds: float, connections: int) -> dict:
        before = _logged(base, auditor, seal_id)
        result = run_wrk(base + path, lua=signing_script(path, token, batch), seconds=seconds,
                         connections=connections, threads=2, server_pid=server_pid, db_url=db_url)
        result["signatures"] = result["ok"] * max(batch, 1)
        result["signatures_per_s"] = result["rate"] * max(batch, 1)
        result["log_growth"] = _logged(base, auditor, seal_id) - before
        # Requests still in flight when wrk stopped may complete after it: the log grows by at
        # least what wrk counted, never less (a lost or replayed signature would show here).
        assert result["log_growth"] >= result["signatures"], result
        return result

    # Warm up every worker's caches (keys, certificates, signing material, JWKS) on both paths.
    phase(single, 0, 2.0, args.connections)
    phase(many, BATCH, 2.0, args.batch_connections)
    sample = requests.post(f"{base}{single}", json={"digest": "11" * 32}, headers=headers, timeout=10).json()
    raw_before, raw_cpu_before = raw_sm2(3.0)
    signing = phase(single, 0, args.seconds, args.connections)
    batching = phase(many, BATCH, args.seconds, args.batch_connections)
    raw_after, raw_cpu_after = raw_sm2(3.0)
    body = json.dumps({"signature_base64": sample["signature_base64"], "digest": "11" * 32})
    assert requests.post(f"{base}/verify", data=body, headers={"Content-Type": "application/json"},
                         timeout=10).json()["valid"]
    # The same body every time (verification changes nothing).
    verifying = run_wrk(f"{base}/verify", method="POST", body=body, headers={"Content-Type": "application/json"},
                        seconds=args.seconds, connections=args.connections, threads=2, server_pid=server_pid,
                        db_url=db_url)
    return {"raw": max(raw_before, raw_after), "raw_before": raw_before, "raw_after": raw_after,
            "raw_cpu_ms": min(raw_cpu_before, raw_cpu_after), "sign": signing,
            "batch": batching, "verify": verifying,
            "signature_bytes": len(base64.b64decode(sample["signature_base64"]))}


def per_unit_ms(phase: dict, key: str) -> float:
    """CPU milliseconds of ``phase[key]`` (``server_cpu_s``, ``db_cpu_s``) per signature (per
    request in a phase without signatures)."""
    return phase[key] / max(phase.get("signatures", phase["ok"]), 1) * 1000


def _report(args, figures: dict, proofs: dict | None) -> None:
    raw, signing, batching, verifying = figures["raw"], figures["sign"], figures["batch"], figures["verify"]
    database = "sqlite" if args.sqlite else "postgresql"
    synchronous = os.environ.get("XSN_SQLITE_SYNCHRONOUS", "FULL").upper() if args.sqlite else None
    cores = os.cpu_count() or 1
    print(f"database: {database}" + (f" (synchronous={synchronous})" if synchronous else "")
          + f"; SM2 backend: {gm.backend_name()}; {args.workers} gunicorn gthread workers x {args.threads} threads "
          f"(keep-alive); {cores} cores")
    print(f"raw SM2 sign/s (1 thread): {raw:,.0f} (before {figures['raw_before']:,.0f}, "
          f"after {figures['raw_after']:,.0f})")
    rows = (("single sign", signing, args.connections), (f"batch sign ({BATCH}/request)", batching,
                                                          args.batch_connections),
            ("verify", verifying, args.connections))
    for name, phase, connections in rows:
        unit = "signatures" if "signatures" in phase else "requests"
        print(f"{name}: {phase.get('signatures_per_s', phase['rate']):,.0f} {unit}/s, {phase['rate']:,.1f} req/s "
              f"(wrk -t2 -c{connections}, {phase['errors']} errors, p50 {phase['p50_ms']:.1f} ms, "
              f"p99 {phase['p99_ms']:.1f} ms); server CPU {per_unit_ms(phase, 'server_cpu_s'):.3f} ms per "
              f"{unit[:-1]} (+ database backends {per_unit_ms(phase, 'db_cpu_s'):.3f} ms); "
              f"wrk used {phase['wrk_cpu_s']:.2f} CPU s in {phase['duration_s']:.1f} s; "
              f"machine busy {phase['cpu_busy']:.0%}")
    sign_ratio = signing["signatures_per_s"] / raw
    batch_ratio = batching["signatures_per_s"] / raw
    # What the ratios would be if the server had every core to itself: SM2 CPU per raw signature
    # over the CPU per signature of the server (gunicorn's arbiter and workers, counted since
    # 53ae702; workers only before) and the database backends serving them (the
    # database shares the cores on this machine). On a shared machine the wall-clock ratios above
    # depend on what else runs; these do not (they include nothing of wrk's own CPU, nor the
    # database's background writers).
    sign_cpu, batch_cpu = (per_unit_ms(phase, "server_cpu_s") + per_unit_ms(phase, "db_cpu_s")
                           for phase in (signing, batching))
    cpu_ratios = {"sign": figures["raw_cpu_ms"] / sign_cpu, "batch": figures["raw_cpu_ms"] / batch_cpu}
    print(f"raw SM2 CPU per signature: {figures['raw_cpu_ms']:.3f} ms; CPU-bound ratios (raw CPU / server's "
          f"(arbiter + workers) + database CPU per signature: {sign_cpu:.3f} and {batch_cpu:.3f} ms): "
          f"single {cpu_ratios['sign']:.3f}, batch {cpu_ratios['batch']:.3f}")
    # With the machine to itself, its cores would sign this many times the one-thread raw rate
    # (a projection from CPU accounting, not the measured target figure; it assumes the workers
    # and the database can keep every core busy).
    projected = {name: cores * ratio for name, ratio in cpu_ratios.items()}
    print(f"projected ratios with the {cores} cores to the server and its database (cores x CPU-bound "
          f"ratio): single {projected['sign']:.3f}, batch {projected['batch']:.3f}")
    proof_growth = proofs["proof_growth"] if proofs is not None else None
    print(f"sign_ratio: {sign_ratio:.3f} (target >= {TARGETS['sign_ratio']})")
    print(f"batch_sign_ratio: {batch_ratio:.3f} (target >= {TARGETS['batch_sign_ratio']})")
    print(f"proof_growth: {proof_growth} (target <= {TARGETS['proof_growth']})" if proofs is not None
          else "proof growth: not run (--skip-proofs)")
    if proofs is not None:
        print(f"proofs: {json.dumps(proofs)}")
    result = {
        "sign_ratio": round(sign_ratio, 4),
        "batch_sign_ratio": round(batch_ratio, 4),
        "proof_growth": proof_growth,
        "sign_per_s": round(signing["signatures_per_s"], 1),
        "batch_sign_per_s": round(batching["signatures_per_s"], 1),
        "verify_per_s": round(verifying["rate"], 1),
        "raw_sm2_sign_per_s": round(raw, 1),
        "raw_sm2_cpu_ms": round(figures["raw_cpu_ms"], 4),
        "cpu_ratio": {"sign": round(cpu_ratios["sign"], 4), "batch": round(cpu_ratios["batch"], 4)},
        "projected_ratio": {"sign": round(projected["sign"], 4), "batch": round(projected["batch"], 4)},
        "sm2_backend": gm.backend_name(),
        "workers": args.workers,
        "threads": args.threads,
        "wrk_connections": {"sign": args.connections, "batch": args.batch_connections},
        "batch_size": BATCH,
        "errors": signing["errors"] + batching["errors"] + verifying["errors"],
        "sign_server_cpu_ms": round(per_unit_ms(signing, "server_cpu_s"), 3),
        "sign_database_cpu_ms": round(per_unit_ms(signing, "db_cpu_s"), 3),
        "batch_database_cpu_ms_per_signature": round(per_unit_ms(batching, "db_cpu_s"), 3),
        "batch_server_cpu_ms_per_signature": round(per_unit_ms(batching, "server_cpu_s"), 3),
        "wrk_cpu_s": {"sign": round(signing["wrk_cpu_s"], 2), "batch": round(batching["wrk_cpu_s"], 2),
                      "verify": round(verifying["wrk_cpu_s"], 2)},
        "cpu_busy": {"sign": round(signing["cpu_busy"], 2), "batch": round(batching["cpu_busy"], 2)},
        "proofs": {k: v for k, v in (proofs or {}).items() if k != "proof_growth"},
        "database": database,
        "sqlite_synchronous": synchronous,
        "signature_bytes": figures["signature_bytes"],
    }
    print_result(result)


if __name__ == "__main__":
    main()
