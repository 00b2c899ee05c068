"""Benchmark the identity node against bare Flask: trivial endpoint, client-credentials tokens, JWT verify.

Run from the repository root::

    python -m bench.identity [--seconds 5] [--connections 16] [--workers 2] [--rounds 2]

Starts, in one run and served the same way (gunicorn, ``--workers`` sync workers, no access
log): a bare Flask app answering ``GET /livez`` with ``{"status": "ok"}``, and the identity
service in a temporary var directory with a migrated SQLite database and the seeded demo
clients. ``wrk`` (see ``bench._load``; Debian package ``wrk``) loads, in alternating rounds
(best of each): bare ``/livez``, identity ``/livez`` (the whole shared request path of
``common.web.app.create_app``) and ``POST /oauth/token`` (client credentials, ES256 JWT).
Then ``common.web.auth.TokenVerifier.verify`` is timed on one core.

wrk shares the machine with the servers: its own CPU share is printed per phase, and so is the
servers' CPU per request (all gunicorn processes, user + system, from /proc), whose ratios
are what the throughput ratios approach on an otherwise idle machine. The last
line is ``RESULT {json}`` with ``bare_ratio`` (identity /livez ÷ bare Flask /livez, target
≥ 0.8), ``token_ratio`` (token issuance ÷ identity /livez, target ≥ 0.5) and ``jwt_verify_per_s``.
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

from bench._load import BARE_FLASK, WrkResult, gunicorn, wrk, wrk_path
from bench.result import print_result

KEK = "00112233445566778899aabbccddeeff"
CLIENT = "xsn-licenses"


def _env(var: Path, log_level: str = "INFO") -> dict[str, str]:
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_LOG_LEVEL=log_level,
               XSN_DATABASE_URL=f"sqlite:///{var / 'identity.db'}", XSN_PUBLIC_BASE_URL="http://127.0.0.1:8000")
    for name in ("XSN_IDENTITY_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


def _prepare(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate", "identity"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    code = ("from common.ops.cli import load_app; from identity.oauth.seed import seed;"
            "app = load_app('identity'); ctx = app.app_context(); ctx.push(); seed(app)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _verify_rate(token: str, jwks: dict, issuer: str, seconds: float) -> float:
    from common.web.auth import JWKSCache, TokenVerifier

    # cache_size=0: the full check (signature included) each call, not the verified-token cache
    verifier = TokenVerifier(issuer=issuer, audience="xsn:seal", jwks=JWKSCache(lambda: jwks), cache_size=0)
    verifier.verify(token)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verifier.verify(token)
        calls += 200
    return calls / (time.perf_counter() - start)


def _checked(name: str, result: WrkResult) -> WrkResult:
    if not result.ok:
        raise RuntimeError(f"{name}: {result.errors} socket errors, {result.non2xx} responses outside 2xx "
                           f"of {result.requests}")
    return result


def _line(name: str, result: WrkResult, note: str = "") -> str:
    return (f"{name:28s} {result.requests_per_s:9.1f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
            f"  wrk CPU {result.wrk_cpu_s / result.duration_s:4.0%} of a core{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per app")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--log-level", default="INFO",
                        help="the service's XSN_LOG_LEVEL; INFO (production's) writes the JSON access line of "
                             "every request, which is part of the request path measured (to /dev/null here)")
    args = parser.parse_args()
    wrk_path()  # fail now, saying what to install, rather than after the set-up

    def load(url: str, seconds: float, **kwargs) -> WrkResult:
        return wrk(url, duration=seconds, connections=args.connections, threads=args.threads, **kwargs)

    with tempfile.TemporaryDirectory(prefix="xsn-bench-identity-") as tmp:
        var = Path(tmp)
        env = _env(var, args.log_level)
        _prepare(env)
        secret = json.loads((var / "clients.json").read_text())[CLIENT]["client_secret"]
        basic = base64.b64encode(f"{CLIENT}:{secret}".encode()).decode()
        token_request = {"method": "POST", "body": "grant_type=client_credentials",
                         "headers": {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": f"Basic {basic}"}}
        with gunicorn(BARE_FLASK, env=env, workers=args.workers) as bare, \
                gunicorn("identity:create_app()", env=env, workers=args.workers, ready_path="/readyz") as identity:
            phases = {
                "bare": (bare, lambda seconds: load(bare.url + "/livez", seconds)),
                "livez": (identity, lambda seconds: load(identity.url + "/livez", seconds)),
                "token": (identity, lambda seconds: load(identity.url + "/oauth/token", seconds, **token_request)),
            }
            for name, (_server, run) in phases.items():  # warm every worker (imports, keys, connections)
                _checked(f"{name} warm-up", run(1))
            best: dict[str, WrkResult] = {}
            cpu_us: dict[str, float] = {}  # server CPU (user + system, all workers) per request
            for _ in range(args.rounds):
                for name, (server, run) in phases.items():
                    before = server.cpu_seconds()
                    result = _checked(name, run(args.seconds))
                    per_request = (server.cpu_seconds() - before) / result.requests * 1e6
                    if name not in best or result.requests_per_s > best[name].requests_per_s:
                        best[name] = result
                    cpu_us[name] = min(cpu_us.get(name, per_request), per_request)
            sample = requests.post(f"{identity.url}/oauth/token",
                                   data={"grant_type": "client_credentials", "resource": "xsn:seal"},
                                   auth=(CLIENT, secret), timeout=10).json()["access_token"]
            jwks = requests.get(f"{identity.url}/jwks.json", timeout=10).json()
            issuer = requests.get(f"{identity.url}/.well-known/openid-configuration", timeout=10).json()["issuer"]
    verify = _verify_rate(sample, jwks, issuer, args.seconds)
    bare_rate, livez, token = (best[name].requests_per_s for name in ("bare", "livez", "token"))
    print(_line("bare Flask /livez", best["bare"]))
    print(_line("identity /livez", best["livez"], f"   bare_ratio {livez / bare_rate:.3f} (target >= 0.8)"))
    print(_line("client-credentials token", best["token"],
                f"   token_ratio {token / livez:.3f} (target >= 0.5); {token / bare_rate:.3f} x bare"))
    print(f"{'JWT verifications (1 core)':28s} {verify:9.1f} /s")
    print(f"server CPU per request (best round): bare {cpu_us['bare']:.0f} us, /livez {cpu_us['livez']:.0f} us, "
          f"token {cpu_us['token']:.0f} us; CPU ratios (what an idle machine's throughput ratios approach): "
          f"bare/livez {cpu_us['bare'] / cpu_us['livez']:.3f}, livez/token {cpu_us['livez'] / cpu_us['token']:.3f}")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other work on the machine squeezes every figure)")
    print_result({
        "bare_per_s": round(bare_rate, 1), "livez_per_s": round(livez, 1), "token_per_s": round(token, 1),
        "bare_ratio": round(livez / bare_rate, 3), "token_ratio": round(token / livez, 3),
        "token_bare_ratio": round(token / bare_rate, 3), "jwt_verify_per_s": round(verify, 1),
        "p99_ms": {name: round(result.p99_ms, 2) for name, result in best.items()},
        "server_cpu_us": {name: round(value, 1) for name, value in cpu_us.items()},
        "bare_cpu_ratio": round(cpu_us["bare"] / cpu_us["livez"], 3),
        "token_cpu_ratio": round(cpu_us["livez"] / cpu_us["token"], 3),
        "loadavg": round(os.getloadavg()[0], 2),
        "wrk_cpu_share": {name: round(result.wrk_cpu_s / result.duration_s, 3) for name, result in best.items()},
        "workers": args.workers, "connections": args.connections, "wrk_threads": args.threads,
        "log_level": args.log_level,
        "cpus": os.cpu_count(),
    })


if __name__ == "__main__":
    main()
