"""Benchmark the licences node: ``python -m bench.licenses``.

Starts the seal node and the licences node under gunicorn (2 sync workers each) on a temporary
var dir (migrated, seeded, trusting a local test JWKS pinned in a file; a licence seal of the
demo approval bureau granted to ``xsn-licenses``), issues licences sealed by the real seal
node, then measures in one run:

* a trivial endpoint of the licences node (``/livez``) with ``wrk``;
* online verification (``POST /verify``: token, authorisation with its conditional use
  count, licence status and validity, document digest, seal signature through the seal
  node's ``/verify`` with the node's cache, use record, commit) with ``wrk`` and the same
  connections; the ratio of the two is ``verify_ratio`` (target ≥ 0.4);
* the same online verification against a second licences server on the same database whose
  SQLite commits are ``PRAGMA synchronous=NORMAL`` (``XSN_SQLITE_SYNCHRONOUS``; the WAL is
  synced at checkpoints, not at every commit): ``verify_ratio_sync_normal``, to show how much
  of a verification is the durable commit of its use record (the headline figure keeps the
  default FULL);
* offline verification of a QR code in this process, one thread (``offline_verify_per_s``,
  target ≥ 2,000 per core);
* bulk issuance of a job of ``--bulk-rows`` (default 5,000) rows in this process, sealed through
  the seal node's batch API when it has one (``POST /seals/<id>/sign-batch``), otherwise with
  the in-process seal (said in ``bulk_seal``); ``bulk_issue_ratio`` = licences per second ÷
  raw SM2 signatures per second (target ≥ 0.3).

wrk and the services share the machine's cores, so the figures are conservative. The last line
is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import requests

from bench.result import print_result
from common.crypto.gm import SM2PrivateKey
from tests.support.suite import TokenFactory, free_port

KEK = "00112233445566778899aabbccddeeff"
ISSUER_CLIENT = "xsn-licenses-demo-issuer"
WINDOW = "bench-window"


def raw_sm2_rate(seconds: float) -> float:
    key = SM2PrivateKey.generate()
    message = bytes(range(32))
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(message)
        count += 1
    return count / (time.perf_counter() - start)


def wrk(url: str, seconds: float, connections: int, script: Path | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    p50 = re.search(r"50%\s+([\d.]+)(\w+)", output)
    return {"rate": rate, "non_2xx": int(bad.group(1)) if bad else 0,
            "p50": f"{p50.group(1)}{p50.group(2)}" if p50 else None}


def _wait(url: str) -> None:
    for _ in range(300):
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _gunicorn(app: str, port: int, env: dict, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
               "--log-level", "warning", "--no-control-socket", app]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


# The seal node's seed makes the departments' licence seals and grants them to xsn-licenses.
SEAL_SETUP = """
import seal
from seal.seed import seed
seed(seal.create_app())
"""


def _rows(n: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["holder_code", "holder_name", "operator_name", "legal_representative", "address", "premises",
                     "business_type", "business_scope"])
    from common.values.codes import CreditCode

    for i in range(n):
        code = CreditCode.build(f"91610113MA6T{i:05d}").value
        writer.writerow([code, f"示范企业{i}", f"示范企业{i}", "赵六", "西安市雁塔区", f"科技路{i}号", "餐饮服务经营者",
                         "热食类食品制售"])
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bulk-rows", type=int, default=5000)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="xsn-bench-licenses-"))
    tokens = TokenFactory()
    seal_port, licenses_port = free_port(), free_port()
    env = dict(os.environ, XSN_VAR_DIR=str(var), XSN_KEK=KEK, XSN_OAUTH_JWKS_URL=tokens.write_jwks(var / "jwks.json"),
               XSN_OAUTH_ISSUER=tokens.issuer, XSN_LOG_LEVEL="WARNING", XSN_SEAL_URL=f"http://127.0.0.1:{seal_port}",
               XSN_LICENSES_AUTH_MAX_USES="1000000000", XSN_RATELIMIT_ENABLED="false")
    for key in ("XSN_SEAL_DATABASE_URL", "XSN_LICENSES_DATABASE_URL"):
        env.pop(key, None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("XSN_")})
    servers: list[subprocess.Popen] = []
    try:
        for service in ("seal", "licenses"):
            subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate", service], env=env, check=True,
                           capture_output=True)
        subprocess.run([sys.executable, "-c", SEAL_SETUP], env=env, check=True, capture_output=True)
        servers.append(_gunicorn("seal:create_app()", seal_port, env, args.workers))
        servers.append(_gunicorn("licenses:create_app()", licenses_port, env, args.workers))
        normal_port = free_port()
        servers.append(_gunicorn("licenses:create_app()", normal_port, dict(env, XSN_SQLITE_SYNCHRONOUS="NORMAL"),
                                 args.workers))
        base = f"http://127.0.0.1:{licenses_port}"
        _wait(f"http://127.0.0.1:{seal_port}/readyz")
        _wait(f"{base}/readyz")
        _wait(f"http://127.0.0.1:{normal_port}/readyz")
        figures = _run(args, tokens, base, f"http://127.0.0.1:{seal_port}", var, f"http://127.0.0.1:{normal_port}")
    finally:
        for server in servers:
            os.killpg(server.pid, 15)
            server.wait(10)
    print(f"raw SM2 sign/s (1 thread): {figures['raw_sm2_sign_per_s']:,.0f}")
    print(f"/livez req/s: {figures['trivial_per_s']:,.0f}; online verify req/s: {figures['verify_per_s']:,.0f} "
          f"(non-2xx {figures['verify_non_2xx']}, p50 {figures['verify_p50']})")
    print(f"verify_ratio: {figures['verify_ratio']:.3f} (target >= 0.4); with SQLite synchronous=NORMAL: "
          f"{figures['verify_normal_per_s']:,.0f} req/s, {figures['verify_ratio_sync_normal']:.3f}")
    print(f"offline verifications/s (1 thread): {figures['offline_verify_per_s']:,.0f} (target >= 2,000 per core)")
    print(f"bulk: {figures['bulk_rows']} rows, validated in {figures['bulk_validate_s']:.1f} s, issued at "
          f"{figures['bulk_issue_per_s']:,.0f}/s with the {figures['bulk_seal']} seal; "
          f"bulk_issue_ratio {figures['bulk_issue_ratio']:.3f} (target >= 0.3)")
    print_result(figures)


def _run(args, tokens: TokenFactory, base: str, seal_url: str, var: Path, normal_base: str) -> dict:
    import licenses
    from common.db import get_db
    from common.http import ServiceClient
    from common.peers.seal_client import HttpSealClient, MemorySealClient, NoSealForIssuer, SealUnavailable
    from common.values.codes import CreditCode
    from licenses import bulk, offline_codes
    from licenses.config import APPROVAL_BUREAU
    from licenses.holders import Holder
    from licenses.issuing import Deps
    from licenses.models import BulkJob
    from licenses.seed import DEMO_PEOPLE, seed

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
    for i in range(args.connections):
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
    window = tokens.token(sub=WINDOW, client_id=WINDOW, scope="licenses:verify", aud="xsn:licenses", lifetime=3600)
    check = requests.post(f"{base}/verify", json={"code": codes[0]}, headers={"Authorization": f"Bearer {window}"},
                          timeout=10)
    assert check.status_code == 200, check.text
    script = var / "verify.lua"
    script.write_text(
        "local codes = {" + ",".join(f'"{c}"' for c in codes) + "}\n"
        "local n = 0\n"
        "request = function()\n  n = n + 1\n"
        "  return wrk.format('POST', '/verify', {['Content-Type'] = 'application/json', "
        f"['Authorization'] = 'Bearer {window}'}}, '{{\"code\": \"' .. codes[n % #codes + 1] .. '\"}}')\nend\n")
    raw_before = raw_sm2_rate(2.0)
    trivial = wrk(f"{base}/livez", args.seconds, args.connections)
    verify = wrk(f"{base}/verify", args.seconds, args.connections, script)
    verify_normal = wrk(f"{normal_base}/verify", args.seconds, args.connections, script)

    # offline: one code, verified repeatedly against the node's lists
    auth_id = client.get(f"/my/licences/{client.get('/my/licences', headers=holder).get_json()[0]['id']}"
                         "/authorisations", headers=holder).get_json()[0]["id"]
    code = client.post(f"/my/authorisations/{auth_id}/offline-code", headers=holder).get_json()["code"]
    trust = offline_codes.TrustList.from_json(client.get("/offline/trust-list").get_json())
    status = offline_codes.StatusList.from_json(client.get("/offline/status-list").get_json(), trust)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3.0:
        offline_codes.verify_code(code, trust, status)
        count += 1
    offline_rate = count / (time.perf_counter() - start)

    # bulk
    text = _rows(args.bulk_rows)
    started = time.perf_counter()
    made = client.post("/bulk-jobs?type_code=food_business_license&format=csv", data=text.encode(), headers=issuer,
                       content_type="text/csv")
    assert made.status_code == 201, made.get_json()
    validate_s = time.perf_counter() - started
    job_id = made.get_json()["id"]
    bulk_seal = "seal node batch API"
    try:
        seal.sign_batch(seal.seal_for(APPROVAL_BUREAU[1], "license"), [("00" * 32, "probe")],
                        idempotency_key=f"probe-{time.time()}")
    except (NoSealForIssuer, SealUnavailable):
        bulk_seal = "in-process (the seal node has no batch API yet)"
        node["deps"] = Deps(cipher=node["deps"].cipher, seal=MemorySealClient())
    started = time.perf_counter()
    with app.app_context(), get_db(app).session() as session:
        job = session.get(BulkJob, job_id)
        while job.status in ("validated", "running"):
            bulk.run_job(session, node["deps"], job, batch=100, max_seconds=600)
        issued = job.issued
    issue_s = time.perf_counter() - started
    raw_after = raw_sm2_rate(2.0)
    raw = (raw_before + raw_after) / 2
    bulk_rate = issued / issue_s
    return {"verify_ratio": round(verify["rate"] / trivial["rate"], 4), "offline_verify_per_s": round(offline_rate, 1),
            "bulk_issue_ratio": round(bulk_rate / raw, 4), "trivial_per_s": trivial["rate"],
            "verify_per_s": verify["rate"], "verify_non_2xx": verify["non_2xx"],
            "verify_normal_per_s": verify_normal["rate"], "verify_normal_non_2xx": verify_normal["non_2xx"],
            "verify_ratio_sync_normal": round(verify_normal["rate"] / trivial["rate"], 4), "verify_p50": verify["p50"],
            "trivial_p50": trivial["p50"], "raw_sm2_sign_per_s": round(raw, 1), "bulk_rows": args.bulk_rows,
            "bulk_issued": issued, "bulk_validate_s": round(validate_s, 2), "bulk_issue_per_s": round(bulk_rate, 1),
            "bulk_seal": bulk_seal, "workers": args.workers, "connections": args.connections,
            "date": date.today().isoformat()}


if __name__ == "__main__":
    main()
