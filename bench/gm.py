"""Benchmark common.crypto.gm against the OpenSSL CLI on the same machine, in the same run.

Run from the repository root::

    python -m bench.gm [--rounds 5] [--seconds 1] [--sm3-seconds 1]

The machine is noisy, so each figure is measured ``--rounds`` times,
alternating our measurement with OpenSSL's, and the best of each side is kept.
The last line is ``RESULT {json}`` with raw figures and ours/OpenSSL ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable

from common.crypto.gm import SM2PrivateKey, backend_name, sm3

# `openssl speed sm2` signs a 20-byte buffer (with Z_A and the default ID); do the same.
SM2_MESSAGE = bytes(range(20))
KIB = 1024
MIB = 1024 * 1024


def _rate(fn: Callable[[], object], seconds: float, batch: int) -> float:
    """Calls per second of ``fn``, checking the clock every ``batch`` calls."""
    fn()  # warm caches and lazy backend handles outside the timed window
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def ours_sm2(seconds: float) -> tuple[float, float]:
    key = SM2PrivateKey.generate()
    pub = key.public_key()
    signature = key.sign(SM2_MESSAGE)
    sign_rate = _rate(lambda: key.sign(SM2_MESSAGE), seconds, 1)
    verify_rate = _rate(lambda: pub.verify(SM2_MESSAGE, signature), seconds, 1)
    return sign_rate, verify_rate


def ours_sm3(size: int, seconds: float) -> float:
    data = bytes(size)
    batch = max(1, (64 * KIB) // size)
    return _rate(lambda: sm3(data), seconds, batch) * size


def _openssl(*args: str) -> str:
    done = subprocess.run(["openssl", "speed", "-mr", *args], capture_output=True, text=True, check=False, timeout=600)
    return done.stdout


def openssl_sm2(seconds: int) -> tuple[float, float]:
    # Machine-readable line: +F7:<idx>:<bits>:CurveSM2:<sign/s>:<verify/s>
    out = _openssl("-seconds", str(seconds), "sm2")
    match = re.search(r"^\+F7:\d+:\d+:\w*SM2\w*:([\d.]+):([\d.]+)", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"cannot parse `openssl speed sm2` output:\n{out}")
    return float(match.group(1)), float(match.group(2))


def openssl_sm3(size: int, seconds: int) -> float:
    # OpenSSL 3.0 knows SM3 in `speed` only through EVP; newer builds take plain `sm3` too.
    for algorithm in (["sm3"], ["-evp", "sm3"]):
        out = _openssl("-seconds", str(seconds), "-bytes", str(size), *algorithm)
        # Machine-readable line: +F:<idx>:sm3:<bytes/s>
        match = re.search(r"^\+F:\d+:sm3:([\d.]+)", out, re.MULTILINE | re.IGNORECASE)
        if match:
            return float(match.group(1))
    raise RuntimeError(f"cannot parse `openssl speed sm3` output:\n{out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short rounds beat few long ones on a shared 2-core machine: each
    # side needs only one quiet window to show its real speed.
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=1, help="per SM2 sign or verify measurement")
    parser.add_argument("--sm3-seconds", type=int, default=1, help="per OpenSSL SM3 measurement")
    args = parser.parse_args(argv)
    if shutil.which("openssl") is None:
        raise SystemExit("openssl CLI not found")

    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    print(f"common.crypto.gm SM2 backend: {backend_name()}; {args.rounds} rounds, best of each kept")
    started = time.perf_counter()
    for round_no in range(1, args.rounds + 1):
        ossl_sign, ossl_verify = openssl_sm2(args.seconds)
        our_sign, our_verify = ours_sm2(args.seconds)
        keep("openssl_sm2_sign_per_s", ossl_sign)
        keep("openssl_sm2_verify_per_s", ossl_verify)
        keep("ours_sm2_sign_per_s", our_sign)
        keep("ours_sm2_verify_per_s", our_verify)
        for label, size in (("1k", KIB), ("1m", MIB)):
            ossl = openssl_sm3(size, args.sm3_seconds)
            ours = ours_sm3(size, args.sm3_seconds)
            keep(f"openssl_sm3_{label}_bytes_per_s", ossl)
            keep(f"ours_sm3_{label}_bytes_per_s", ours)
        print(
            f"round {round_no}: SM2 sign {our_sign:,.0f}/s vs {ossl_sign:,.0f}/s, "
            f"verify {our_verify:,.0f}/s vs {ossl_verify:,.0f}/s (ours vs OpenSSL)"
        )

    result: dict[str, object] = {"backend": backend_name(), "rounds": args.rounds}
    result.update({k: round(v, 1) for k, v in sorted(best.items())})
    ratios = {
        "sm2_sign_ratio": best["ours_sm2_sign_per_s"] / best["openssl_sm2_sign_per_s"],
        "sm2_verify_ratio": best["ours_sm2_verify_per_s"] / best["openssl_sm2_verify_per_s"],
        "sm3_1k_ratio": best["ours_sm3_1k_bytes_per_s"] / best["openssl_sm3_1k_bytes_per_s"],
        "sm3_1m_ratio": best["ours_sm3_1m_bytes_per_s"] / best["openssl_sm3_1m_bytes_per_s"],
    }
    result.update({k: round(v, 3) for k, v in ratios.items()})
    result["elapsed_s"] = round(time.perf_counter() - started, 1)

    print(
        f"SM2 sign   ours {best['ours_sm2_sign_per_s']:>12,.0f}/s   "
        f"OpenSSL {best['openssl_sm2_sign_per_s']:>12,.0f}/s   ratio {ratios['sm2_sign_ratio']:.3f}"
    )
    print(
        f"SM2 verify ours {best['ours_sm2_verify_per_s']:>12,.0f}/s   "
        f"OpenSSL {best['openssl_sm2_verify_per_s']:>12,.0f}/s   ratio {ratios['sm2_verify_ratio']:.3f}"
    )
    for label in ("1k", "1m"):
        ours = best[f"ours_sm3_{label}_bytes_per_s"] / 1e6
        ossl = best[f"openssl_sm3_{label}_bytes_per_s"] / 1e6
        print(
            f"SM3 {label:<6} ours {ours:>10,.1f} MB/s   OpenSSL {ossl:>10,.1f} MB/s   "
            f"ratio {ratios[f'sm3_{label}_ratio']:.3f}"
        )
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
