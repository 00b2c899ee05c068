"""Benchmark the gateway: one small upstream endpoint called directly, through nginx as a
plain reverse proxy, and through the gateway with JWT verification, rate limiting and audit on.

Run from the repository root::

    python -m bench.gateway [--seconds 5] [--connections 32] [--workers 2] [--idle 1000]
        [--rounds 2] [--upstream-threads 4] [--audit-sink audit|memory] [--setting KEY=VALUE]
        [--profile edge.prof] [--unix-socket]

The upstream is a bare Flask app (``GET /item`` → small JSON) under gunicorn, 2 gthread
workers × ``--upstream-threads`` (4; they keep connections alive; 0: sync workers, which close
each connection after one answer), the same behind every front. nginx (Debian ``nginx-light``,
``/usr/sbin/nginx``) runs unprivileged on a free port with a keep-alive upstream
(``keepalive 64``) and no access log, from a configuration this benchmark writes. The gateway
(``python -m gateway.edge``, ``--workers`` processes on SO_REUSEPORT) routes ``/bench/item``
with ``auth: token`` and a required scope, so every request is an ES256 access token verified
(then served from the shared verifier's verified-token cache), a token-bucket limit taken (in memory,
limit high enough never to refuse) and an audit record written durably (the default sink:
each edge process's fsync'd spool, group-committed; ``python -m gateway.audit_writer`` runs
beside it, one process per spool, moving the records into the SM3 Merkle log in a SQLite
gateway database; the count of records in that log is reported as ``audit_records``). Load
comes from ``wrk`` (``bench/_load.py``; its version is in the result), 2 threads, in rounds of
direct, nginx, gateway back to back; ratios and added latency are the median over rounds of
each round's own figures. Each round also reports the CPU per request of the front's own
processes (nginx; the edge and its writers, and the writers alone) and of the upstream, and
the result has one edge process's spool figures (records per fsync, fsync time).

Then ``--idle`` connections are opened to the gateway, each sending half a request head,
and a normal request is timed while they are held. The last line is ``RESULT {json}`` with
``nginx_ratio`` (gateway req/s ÷ nginx req/s), ``added_p50_ms`` (gateway p50 − direct p50)
and ``idle_connections_held``. Targets (issue 10): ≥ 0.5, ≤ 3 ms, 1,000 with the normal
request < 100 ms. A side figure, not a target: ``one_connection_added_p50_ms`` (and nginx's), the
same difference over a single connection, where nothing queues: what one request pays for the hop.

A second side figure, not a target: the same three fronts under an offered load below
saturation (``--paced-fraction`` of the gateway's closed-loop rate, 0.5 by default; 0 skips it):
the same connections, each pausing an exponential think time before each request
(``bench._load.paced_lua``), so the requests arrive at about that rate whatever the front
answers. ``paced_added_p50_ms`` is the gateway's p50 minus the direct one there: what a request
pays when the machine has room, where ``added_p50_ms`` is mostly the queue of a saturated one.

``--unix-socket`` adds a fourth front to every round, right after the gateway: the same gateway
(route ``/benchu/item``) to a second upstream, the same app under gunicorn bound to a Unix
domain socket the edge reaches through ``GATEWAY_UPSTREAM_SOCKETS`` (gthread workers sharing one
listening socket: a Unix socket cannot be ``SO_REUSEPORT``); the result adds
``unix_socket_edge_cpu_delta_ms`` and ``unix_socket_upstream_cpu_delta_ms`` (socket minus TCP,
per request, median over rounds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench._gateway_processes import nginx, socket_upstream
from bench._load import gunicorn, machine_busy_seconds, paced_lua, tree_cpu_seconds, wrk, wrk_version
from bench.result import print_result
from tests.support.suite import free_port, process, wait_ready

ROOT = Path(__file__).resolve().parent.parent
ROUTE_FILE = """prefix: /bench
upstream: bench
routes:
  - {path: /item, methods: [GET], auth: token, scopes: ["bench:read"]}
"""
SOCKET_ROUTE_FILE = ROUTE_FILE.replace("/bench\n", "/benchu\n").replace("upstream: bench\n", "upstream: benchu\n")


def upstream_app():
    """The small upstream endpoint: a bare Flask app, the same behind every front."""
    from flask import Flask

    app = Flask("bench_upstream")

    @app.get("/item")
    def item():
        return {"id": 1, "status": "ok"}

    @app.get("/livez")
    def livez():
        return {"status": "ok"}

    return app


@contextlib.contextmanager
def gateway(upstream: str, work: Path, workers: int, audit_sink: str = "audit", profile: Path | None = None,
            settings: dict[str, str] | None = None,
            socket_upstream: tuple[str, str] | None = None) -> Iterator[tuple[str, dict, subprocess.Popen]]:
    """The gateway in front of ``upstream``; yields its URL, the headers of a valid token, the process.

    ``socket_upstream``: (URL, socket path) of a second upstream, routed at ``/benchu``."""
    from tests.support.suite import TokenFactory

    port = free_port()
    issuer = f"http://127.0.0.1:{port}/identity"
    tokens = TokenFactory(issuer=issuer)
    routes = work / "routes"
    routes.mkdir()
    (routes / "bench.yaml").write_text(ROUTE_FILE)
    if socket_upstream is not None:
        (routes / "benchu.yaml").write_text(SOCKET_ROUTE_FILE)
    var = work / "var"
    from common.ops.migrate import upgrade

    database_url = f"sqlite:///{var / 'gateway.db'}"
    var.mkdir(parents=True, exist_ok=True)
    upgrade("gateway", database_url)  # the audit log's tables
    urls = {name: upstream for name in ("identity", "licenses", "seal", "payment", "messaging")}
    urls.update(bench=upstream, gateway=f"http://127.0.0.1:{port}")
    if socket_upstream is not None:
        urls["benchu"] = socket_upstream[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSN_")}
    env.update(XSN_VAR_DIR=str(var), XSN_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", XSN_LOG_LEVEL="WARNING",
               XSN_SERVICE_URLS=json.dumps(urls), XSN_GATEWAY_ROUTES_DIR=str(routes),
               XSN_OAUTH_ISSUER=issuer, XSN_OAUTH_JWKS_URL=tokens.write_jwks(work / "jwks.json"),
               XSN_GATEWAY_ADMIN_URL=upstream, XSN_DATABASE_URL=database_url, XSN_GATEWAY_AUDIT_SINK=audit_sink,
               XSN_KEK="00" * 16,
               XSN_GATEWAY_RATE_LIMITS=json.dumps({"default": {"rate": 10_000_000, "burst": 10_000_000}}))
    if socket_upstream is not None:
        env["XSN_GATEWAY_UPSTREAM_SOCKETS"] = json.dumps({"benchu": socket_upstream[1]})
    env.update({f"XSN_{key}": value for key, value in (settings or {}).items()})
    argv = [sys.executable, "-m", "gateway.edge", "--port", str(port), "--workers", str(workers)]
    if profile is not None:
        # One edge process under cProfile timed by the CPU its event loop's thread uses (wall
        # time on a loaded machine would charge other processes' turns to whatever was running);
        # the stats are written when it stops.
        argv[1:3] = ["-c", "import cProfile, sys, time; from gateway.edge.__main__ import main; "
                           "p = cProfile.Profile(time.thread_time); sys.argv[0] = 'gateway.edge'; "
                           f"p.runcall(main, sys.argv[1:]); p.dump_stats({str(profile)!r})"]
    # The audit writer processes (one per edge worker's spool), as `xsn run` starts them.
    writer_argv = [sys.executable, "-m", "gateway.audit_writer", "--workers", str(workers)]
    with process(argv, env=env, log=work / "gateway.log") as proc, \
            (process(writer_argv, env=env, log=work / "audit-writer.log") if audit_sink == "audit"
             else contextlib.nullcontext()) as writer:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/readyz", proc=proc)
        proc.writer = writer
        token = tokens.token(aud=["xsn:bench", "xsn:benchu"], scope="bench:read", client_id="bench-client",
                             lifetime=3600)
        yield url, {"Authorization": f"Bearer {token}"}, proc


def _check(url: str, headers: dict) -> None:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        assert response.status == 200, response.status


def idle_connections(url: str, headers: dict, count: int) -> dict:
    """Hold ``count`` half-sent request heads open and time a normal request meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = url.removeprefix("http://").split(":")
    held: list[socket.socket] = []
    baseline = []
    for _ in range(5):  # the same request without idle connections: what the machine gives anyway
        started = time.perf_counter()
        _check(url + "/bench/item", headers)
        baseline.append((time.perf_counter() - started) * 1000)
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(f"GET /bench/item HTTP/1.1\r\nHost: {host}:{port}\r\nX-Partial: ".encode())
            held.append(sock)
        time.sleep(0.5)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            _check(url + "/bench/item", headers)
            timings.append((time.perf_counter() - started) * 1000)
        readable, _, _ = select.select(held, [], [], 0)  # a closed (or answered) connection is readable
        return {"held": count - len(readable), "normal_request_ms": round(max(timings), 2),
                "normal_request_ms_without_idle": round(max(baseline), 2)}
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _audit_records(database: Path, *, wait_s: float) -> int:
    """Records in the gateway's audit log once its writers have caught up (count stops growing)."""
    import sqlite3

    deadline, last = time.monotonic() + wait_s, -1
    while True:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
            count = connection.execute("SELECT count(*) FROM audit_records").fetchone()[0]
        if count == last or time.monotonic() > deadline:
            return count
        last = count
        time.sleep(1.0)


def _readyz_audit(url: str) -> dict | None:
    """One edge process's view of its spool: group size and fsync time (``/readyz``'s ``audit_log``)."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:  # noqa: S310 - loopback
            return json.loads(response.read()).get("audit_log")
    except OSError as exc:
        if hasattr(exc, "read"):
            return json.loads(exc.read()).get("audit_log")
        return None


def _paced(targets: dict[str, tuple[str, dict]], paired: list[dict[str, dict]], args) -> dict:
    """Each front at the same offered rate, a fraction of the gateway's closed-loop rate."""
    rate = args.paced_fraction * statistics.median(r["gateway"]["rps"] for r in paired)
    # Think time so that the connections together offer ``rate``: the latency (a few ms at most
    # below saturation) makes the real rate slightly lower, the same for every front.
    mean_ms = args.connections * 1000 / rate
    out: dict = {"paced_offered_per_s": round(rate), "paced_think_ms": round(mean_ms, 2)}
    for name, (url, headers) in targets.items():
        result = wrk(url, duration=args.seconds, connections=args.connections, headers=headers,
                     lua=paced_lua(mean_ms))
        if not result.ok:
            raise RuntimeError(f"paced {name}: {result}")
        out[f"paced_{name}_rps"] = round(result.requests_per_s)
        out[f"paced_{name}_p50_ms"] = round(result.p50_ms, 3)
        out[f"paced_{name}_p99_ms"] = round(result.p99_ms, 3)
        print(f"paced {name}: {result.requests_per_s:.0f} req/s, p50 {result.p50_ms:.3f} ms, "
              f"p99 {result.p99_ms:.3f} ms", flush=True)
    out["paced_added_p50_ms"] = round(out["paced_gateway_p50_ms"] - out["paced_direct_p50_ms"], 3)
    out["paced_nginx_added_p50_ms"] = round(out["paced_nginx_p50_ms"] - out["paced_direct_p50_ms"], 3)
    return out


def _median(values: list[float], digits: int) -> float:
    return round(statistics.median(values), digits)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gateway processes")
    parser.add_argument("--nginx-workers", type=int, default=None,
                        help="nginx worker processes (default: one per core)")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a gateway setting for the edge and its writers (XSN_KEY=VALUE), e.g. "
                             "AUDIT_SPOOL_SYNC_INTERVAL_MS=0 (an fsync whenever the last one ends, as before)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the gateway (use --workers 1) under cProfile and write its stats here")
    parser.add_argument("--upstream-threads", type=int, default=4,
                        help="threads per gunicorn gthread worker of the upstream (keep-alive); 0: sync workers, "
                             "which close each connection after one answer")
    parser.add_argument("--audit-sink", default="audit", choices=["audit", "memory"],
                        help="memory: audit records kept in a list, to measure what the durable log costs")
    parser.add_argument("--paced-fraction", type=float, default=0.5,
                        help="also offer each front this fraction of the gateway's closed-loop rate (0: skip)")
    parser.add_argument("--unix-socket", action="store_true",
                        help="also the gateway to an upstream on a Unix domain socket, after the gateway each round")
    args = parser.parse_args(argv)
    figures: dict = {"audit_sink": args.audit_sink, "settings": " ".join(args.setting) or "defaults",
                     "connections": args.connections,
                     "gateway_workers": args.workers, "nginx_workers": args.nginx_workers or os.cpu_count(),
                     "cores": os.cpu_count(),
                     "upstream": f"gunicorn 2 x gthread {args.upstream_threads} threads" if args.upstream_threads
                     else "gunicorn 2 sync workers", "load_generator": f"wrk ({wrk_version()}), 2 threads"}
    with tempfile.TemporaryDirectory(prefix="xsn-bench-gw-") as tmp:
        work = Path(tmp)
        with gunicorn("bench.gateway:upstream_app()", workers=2, cwd=ROOT, ready_path="/livez",
                      threads=args.upstream_threads) as upstream, \
                nginx(upstream.url, work, args.nginx_workers) as (nginx_url, nginx_pid), \
                (socket_upstream(work, args.upstream_threads) if args.unix_socket
                 else contextlib.nullcontext((None, None))) as (unix_upstream, unix_path), \
                gateway(upstream.url, work, args.workers, args.audit_sink, args.profile,
                        dict(item.split("=", 1) for item in args.setting),
                        (unix_upstream.url, unix_path) if unix_upstream else None) as (gw_url, auth, gw):
            _check(gw_url + "/bench/item", auth)
            targets = {"direct": (upstream.url + "/item", {}), "nginx": (nginx_url + "/item", {}),
                       "gateway": (gw_url + "/bench/item", auth)}
            if unix_upstream is not None:
                _check(gw_url + "/benchu/item", auth)
                targets["gateway_unix"] = (gw_url + "/benchu/item", auth)
            best: dict[str, dict] = {}
            paired: list[dict[str, dict]] = []  # each round's three measurements, taken back to back
            for _round in range(args.rounds):
                paired.append({})
                for name, (url, headers) in targets.items():
                    # CPU of the front's own processes (nginx; the edge and its audit writers) and of the upstream.
                    fronts = {"direct": [], "nginx": [nginx_pid],
                              "gateway": [gw.pid] + ([gw.writer.pid] if gw.writer else [])}[name.removesuffix("_unix")]
                    serving = unix_upstream if name == "gateway_unix" else upstream
                    front_before = sum(tree_cpu_seconds(pid) for pid in fronts)
                    upstream_before = serving.cpu_seconds()
                    writer_before = tree_cpu_seconds(gw.writer.pid) if gw.writer else 0.0
                    busy_before, started = machine_busy_seconds(), time.monotonic()
                    result = wrk(url, duration=args.seconds, connections=args.connections, headers=headers)
                    if not result.ok:
                        raise RuntimeError(f"{name}: {result}")
                    per = 1000 / max(1, result.requests)
                    entry = {"rps": round(result.requests_per_s), "p50_ms": round(result.p50_ms, 2),
                             "p99_ms": round(result.p99_ms, 2), "wrk_cpu_s": round(result.wrk_cpu_s, 2),
                             "upstream_cpu_ms_per_request": round((serving.cpu_seconds() - upstream_before) * per, 3)}
                    busy_after, elapsed = machine_busy_seconds(), time.monotonic() - started
                    if busy_before is not None and busy_after is not None:
                        # Cores the whole machine kept busy: below the core count, the front's
                        # latency is not all queueing for CPU (e.g. waits for the audit's fsync).
                        entry["machine_cores_busy"] = round((busy_after - busy_before) / elapsed, 2)
                    if fronts:
                        entry["front_cpu_ms_per_request"] = round(
                            (sum(tree_cpu_seconds(pid) for pid in fronts) - front_before) * per, 3)
                    if name.startswith("gateway") and gw.writer:
                        entry["writer_cpu_ms_per_request"] = round(
                            (tree_cpu_seconds(gw.writer.pid) - writer_before) * per, 3)
                        # The edge processes alone (the front's figure includes the writers).
                        entry["edge_cpu_ms_per_request"] = round(
                            entry["front_cpu_ms_per_request"] - entry["writer_cpu_ms_per_request"], 3)
                    print(f"{name:8s} round {_round + 1}: {entry}", flush=True)
                    paired[-1][name] = entry
                    if name not in best or entry["rps"] > best[name]["rps"]:
                        best[name] = entry
            # Side figure (not the target's): p50 over one connection, nothing queued, so what
            # a single request pays for each hop itself; at 32 saturating connections the added
            # p50 is mostly queueing behind the front's CPU per request.
            single = {name: wrk(url, duration=max(2, args.seconds / 2), connections=1, threads=1, headers=headers)
                      for name, (url, headers) in targets.items()}
            failed = {name: r for name, r in single.items() if not r.ok}
            if failed:
                raise RuntimeError(f"one connection: {failed}")
            print("one connection: " + ", ".join(f"{name} p50 {r.p50_ms:.3f} ms" for name, r in single.items()),
                  flush=True)
            if args.paced_fraction > 0:
                figures.update(_paced(targets, paired, args))
            figures["gateway_audit_log"] = _readyz_audit(gw_url)
            idle = idle_connections(gw_url, auth, args.idle)
            print(f"idle: {idle}", flush=True)
            audited = _audit_records(work / "var" / "gateway.db", wait_s=30) if args.audit_sink == "audit" else None
    figures.update(best)
    figures["audit_records"] = audited
    # Ratios and added latency from measurements of the same round (back to back), the median
    # over rounds: on a shared machine the load moves between rounds, and a best-of-each would
    # compare a quiet moment of one front with a busy moment of another.
    figures["nginx_ratio"] = _median([r["gateway"]["rps"] / r["nginx"]["rps"] for r in paired], 3)
    figures["direct_ratio"] = _median([r["gateway"]["rps"] / r["direct"]["rps"] for r in paired], 3)
    figures["added_p50_ms"] = _median([r["gateway"]["p50_ms"] - r["direct"]["p50_ms"] for r in paired], 2)
    figures["nginx_added_p50_ms"] = _median([r["nginx"]["p50_ms"] - r["direct"]["p50_ms"] for r in paired], 2)
    if args.unix_socket:
        # The same edge and app, only the edge's hop to the app differs: per request, socket minus TCP.
        for key, out in (("edge_cpu_ms_per_request", "unix_socket_edge_cpu_delta_ms"),
                         ("front_cpu_ms_per_request", "unix_socket_front_cpu_delta_ms"),
                         ("upstream_cpu_ms_per_request", "unix_socket_upstream_cpu_delta_ms"),
                         ("p50_ms", "unix_socket_p50_delta_ms")):
            if all(key in r["gateway"] for r in paired):
                figures[out] = _median([r["gateway_unix"][key] - r["gateway"][key] for r in paired], 3)
    figures["one_connection_added_p50_ms"] = round(single["gateway"].p50_ms - single["direct"].p50_ms, 3)
    figures["one_connection_nginx_added_p50_ms"] = round(single["nginx"].p50_ms - single["direct"].p50_ms, 3)
    figures["idle_connections_held"] = idle["held"]
    figures["idle_normal_request_ms"] = idle["normal_request_ms"]
    figures["normal_request_ms_without_idle"] = idle["normal_request_ms_without_idle"]
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)  # others' work on the machine skews every figure
    print_result(figures)


if __name__ == "__main__":
    main()
