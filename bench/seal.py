"""Benchmark the seal node end to end: ``python -m bench.seal``.

Starts the seal service under gunicorn (2 sync workers by default) on a temporary var dir
(migrated, seeded, trusting a local test JWKS pinned in a file), then measures in one run:

* raw SM2 signing per second (``common.gm``, one thread, this process);
* end-to-end signing requests per second with concurrent client threads (HTTP, token
  verification, grant check, SES_Signature build and SM2 signature, log append, database
  write and commit);
* verification requests per second (all five checks);
* proof generation time at 10^3, 10^5, 10^6 leaves through ``bench.seal_log.measure_proof_growth``
  (owned by the signature-log engineer) when that module exists.

The client threads run on the same machine as the server, so they take CPU from it: the
figures are conservative. The last line is ``RESULT {json}`` with ``sign_ratio`` (end-to-end
signing ÷ raw SM2 signing) and ``proof_growth`` (proof time at 10^6 ÷ at 10^3, or null).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from common.gm import SM2PrivateKey, sm3
from common.testing import TokenFactory, free_port

KEK = "00112233445566778899aabbccddeeff"


def raw_sm2_rate(seconds: float) -> float:
    key = SM2PrivateKey.generate()
    message = bytes(range(20))
    key.sign(message)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(message)
        count += 1
    return count / (time.perf_counter() - start)


def _hammer(make_request, threads: int, seconds: float) -> tuple[float, int]:
    """Requests per second over ``threads`` client threads, and the number of errors."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads
    errors = [0] * threads

    def worker(i: int) -> None:
        session = requests.Session()
        n = 0
        while time.perf_counter() < stop:
            response = make_request(session, i, n)
            n += 1
            if response.status_code in (200, 201):
                counts[i] += 1
            else:
                errors[i] += 1

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - start), sum(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-proofs", action="store_true")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="xsn-bench-seal-"))
    tokens = TokenFactory()
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_OAUTH_JWKS_URL=tokens.write_jwks(var / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_LOG_LEVEL="WARNING")
    env.pop("XSN_SEAL_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "common.cli", "migrate", "seal"], env=env, check=True,
                   capture_output=True)
    seed = ("import seal, seal.seed; app = seal.create_app()\nwith app.app_context(): seal.seed.seed(app)")
    subprocess.run([sys.executable, "-c", seed], env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--bind",
                               f"127.0.0.1:{port}", "--log-level", "warning", "seal:create_app()"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        headers = tokens.bearer(sub="bench", scope="seal:sign", client_id="xsn-licenses", lifetime=3600)
        seals = requests.get(f"{base}/seals/granted", headers=headers, timeout=5).json()
        seal_id = next(s["id"] for s in seals if s["kind"] == "license")
        run_id = os.urandom(4).hex()

        def sign(session, i, n):
            digest = sm3(f"{run_id}-{i}-{n}".encode()).hex()
            return session.post(f"{base}/seals/{seal_id}/sign", json={"digest": digest}, timeout=30,
                                headers=dict(headers, **{"Idempotency-Key": f"{run_id}-{i}-{n}"}))

        # Warm up every worker's caches (keys, certificates, JWKS).
        _hammer(sign, args.threads, 1.0)
        sample = requests.post(f"{base}/seals/{seal_id}/sign", json={"digest": "11" * 32}, headers=headers,
                               timeout=10).json()
        raw_before = raw_sm2_rate(3.0)
        sign_rate, sign_errors = _hammer(sign, args.threads, args.seconds)
        raw_after = raw_sm2_rate(3.0)
        raw = max(raw_before, raw_after)

        def verify(session, i, n):
            return session.post(f"{base}/verify", json={"signature_base64": sample["signature_base64"],
                                                        "digest": "11" * 32}, timeout=30)

        check = requests.post(f"{base}/verify", json={"signature_base64": sample["signature_base64"],
                                                      "digest": "11" * 32}, timeout=10).json()
        assert check["valid"], check
        verify_rate, verify_errors = _hammer(verify, args.threads, args.seconds)
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)

    proof_growth = None
    proofs = None
    if not args.skip_proofs and importlib.util.find_spec("bench.seal_log") is not None:
        module = importlib.import_module("bench.seal_log")
        if hasattr(module, "measure_proof_growth"):
            proofs = module.measure_proof_growth()
            proof_growth = proofs.get("proof_growth") if isinstance(proofs, dict) else None
    print(f"raw SM2 sign/s (1 thread): {raw:,.0f} (before {raw_before:,.0f}, after {raw_after:,.0f})")
    print(f"end-to-end sign req/s: {sign_rate:,.0f} ({args.workers} workers, {args.threads} client threads, "
          f"{sign_errors} errors)")
    print(f"verify req/s: {verify_rate:,.0f} ({verify_errors} errors)")
    print(f"sign_ratio: {sign_rate / raw:.3f} (target >= 0.25)")
    if proofs is not None:
        print(f"proofs: {json.dumps(proofs)}")
    else:
        print("proof growth: bench.seal_log.measure_proof_growth not available")
    result = {
        "sign_ratio": round(sign_rate / raw, 4),
        "proof_growth": proof_growth,
        "sign_per_s": round(sign_rate, 1),
        "verify_per_s": round(verify_rate, 1),
        "raw_sm2_sign_per_s": round(raw, 1),
        "workers": args.workers,
        "client_threads": args.threads,
        "errors": sign_errors + verify_errors,
        "proofs": proofs,
        "database": "sqlite",
        "signature_bytes": len(base64.b64decode(sample["signature_base64"])),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
