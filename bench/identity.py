"""Benchmark the identity node: client-credentials tokens/s vs a trivial endpoint, JWT verify/s.

Run from the repository root::

    python -m bench.identity [--seconds 5] [--threads 16] [--workers 2]

Starts the identity service under gunicorn (``--workers`` sync workers) in a temporary var
directory with a migrated SQLite database and the seeded demo clients, then measures over
HTTP with ``--threads`` concurrent keep-alive sessions: ``GET /livez`` (trivial JSON) and
``POST /oauth/token`` (client credentials, ES256 JWT), alternating rounds, best of each.
Then measures ``common.web.auth.TokenVerifier.verify`` on one core. The last line is
``RESULT {json}`` with ``token_ratio`` and ``jwt_verify_per_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from tests.support.suite import free_port

KEK = "00112233445566778899aabbccddeeff"
CLIENT = "xsn-licenses"


def _env(var: Path) -> dict[str, str]:
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_LOG_LEVEL="WARNING",
               XSN_DATABASE_URL=f"sqlite:///{var / 'identity.db'}")
    env.pop("XSN_IDENTITY_DATABASE_URL", None)
    return env


def _load(url: str, seconds: float, threads: int, request) -> float:
    """Requests per second of ``request(session)`` from ``threads`` keep-alive sessions."""
    counts = [0] * threads
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def run(index: int) -> None:
        session = requests.Session()
        while time.perf_counter() < stop:
            response = request(session)
            if response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:200]}")
                return
            counts[index] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"{url}: {errors[0]}")
    return sum(counts) / (time.perf_counter() - start)


def _verify_rate(token: str, jwks: dict, issuer: str, seconds: float) -> float:
    from common.web.auth import JWKSCache, TokenVerifier

    verifier = TokenVerifier(issuer=issuer, audience="xsn:seal", jwks=JWKSCache(lambda: jwks))
    verifier.verify(token)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verifier.verify(token)
        calls += 200
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xsn-bench-identity-") as tmp:
        var = Path(tmp)
        env = _env(var)
        subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate", "identity"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-c", "from common.ops.cli import load_app; from identity.oauth.seed import seed;"
                        "app = load_app('identity'); ctx = app.app_context(); ctx.push(); seed(app)"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secret = json.loads((var / "clients.json").read_text())[CLIENT]["client_secret"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
             "--keep-alive", "30", "--log-level", "warning", "--no-control-socket", "identity:create_app()"],
            env=dict(env, XSN_PUBLIC_BASE_URL="http://127.0.0.1:8000"), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("identity did not start")
                time.sleep(0.2)

            def livez(session):
                return session.get(f"{base}/livez", timeout=10)

            def token(session):
                return session.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(CLIENT, secret), timeout=10)

            for request in (livez, token):  # warm every worker's caches (keys, connections)
                _load(base, 1.0, args.threads, request)
            trivial, issued = 0.0, 0.0
            for _ in range(args.rounds):
                trivial = max(trivial, _load(base, args.seconds, args.threads, livez))
                issued = max(issued, _load(base, args.seconds, args.threads, token))
            sample = requests.post(f"{base}/oauth/token", data={"grant_type": "client_credentials",
                                                                "resource": "xsn:seal"},
                                   auth=(CLIENT, secret), timeout=10).json()["access_token"]
            jwks = requests.get(f"{base}/jwks.json", timeout=10).json()
            issuer = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()["issuer"]
        finally:
            os.killpg(server.pid, 15)
            server.wait(10)
    verify = _verify_rate(sample, jwks, issuer, args.seconds)
    result = {"livez_per_s": round(trivial, 1), "token_per_s": round(issued, 1),
              "token_ratio": round(issued / trivial, 3), "jwt_verify_per_s": round(verify, 1),
              "workers": args.workers, "threads": args.threads, "cpus": os.cpu_count()}
    print(f"livez (trivial JSON):       {trivial:10.1f} req/s")
    print(f"client-credentials tokens:  {issued:10.1f} req/s   ratio {issued / trivial:.3f} (target >= 0.5)")
    print(f"JWT verifications (1 core): {verify:10.1f} /s      (target >= 5000)")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
