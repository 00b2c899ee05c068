"""CPU per client-credentials token, in process (no server, no network): what issuance costs
beyond a trivial endpoint, and where it goes.

    python -m bench.identity_token_cpu [--n 3000] [--profile]

Drives the identity app through Flask's test client (the same WSGI path gunicorn calls), so
the figures are worker CPU per request without HTTP parsing; ``--profile`` prints the top of a
cProfile of the token requests. The HTTP throughput benchmark is ``bench.identity`` (wrk).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

CLIENT = "xsn-licenses"


def _app(tmp: Path):
    from common.ops.migrate import upgrade
    from identity import create_app
    from identity.oauth.seed import seed

    url = f"sqlite:///{tmp / 'identity.db'}"
    upgrade("identity", url)
    app = create_app({"DATABASE_URL": url, "VAR_DIR": str(tmp / "var"), "KEK": "00112233445566778899aabbccddeeff",
                      "LOG_LEVEL": "WARNING"})
    with app.app_context():
        seed(app)
    secret = json.loads((tmp / "var" / "clients.json").read_text())[CLIENT]["client_secret"]
    return app, secret


def _per_request(call, n: int) -> float:
    for _ in range(min(200, n)):  # warm caches (keys, client rows, templates)
        call()
    start = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - start) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative or tottime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xsn-token-cpu-") as tmp:
        app, secret = _app(Path(tmp))
        client = app.test_client()

        def livez():
            assert client.get("/livez").status_code == 200

        def token():
            response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=(CLIENT, secret))
            assert response.status_code == 200, response.get_data(as_text=True)

        livez_ms = _per_request(livez, args.n)
        token_ms = _per_request(token, args.n)
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(args.n):
                token()
            profile.disable()
            pstats.Stats(profile).sort_stats(args.sort).print_stats(45)
        result = {"livez_cpu_ms": round(livez_ms, 3), "token_cpu_ms": round(token_ms, 3),
                  "token_extra_cpu_ms": round(token_ms - livez_ms, 3), "n": args.n}
        print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
