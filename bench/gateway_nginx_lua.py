"""A measured prototype, not the gateway: the gateway's request path as nginx + LuaJIT, to see
whether a compiled data plane would reach issue 10's ``added_p50_ms`` ≤ 3 ms where the Python
edge does not (docs/ARCHITECTURE.md, "Measured: a compiled data plane").

Run from the repository root (Debian ``nginx-light``, ``libnginx-mod-http-lua``,
``lua-resty-core`` and ``lua-cjson``; the benchmark says what is missing)::

    python -m bench.gateway_nginx_lua [--seconds 5] [--rounds 3] [--connections 32]

The same upstream as ``bench.gateway`` (its ``upstream_app`` under gunicorn, 2 gthread workers
× 4 threads) is called directly, through nginx as a plain reverse proxy, and through nginx
running ``bench/nginx_lua/edge.lua`` in three modes: ``noaudit`` (token from a shared-dict cache
of verified tokens — a miss asks a small Python verifier using the project's ``TokenVerifier``
— expiry, revocation and scope checked, a token bucket taken, caller headers set, the request
proxied by nginx's C proxy as a subrequest), ``nosync`` (the same, plus each request's audit
record handed to nginx's thread pool and written to a spool file, group-committed per worker,
before the answer), and ``full`` (the same with ``fdatasync`` of each group, the durability the
issue asks of the audit log). What it leaves out that the gateway does: the spool's frames and
CRCs, the writer moving records into the Merkle log (``bench.gateway`` counts that process's CPU,
this does not), path and Host checks, hop-by-hop headers, CORS, metrics. So its figures are a
lower bound for such a design.

The last line is ``RESULT {json}`` with, per front, the median over rounds of the p50 added over
direct (``<front>_added_p50_ms``), throughput (``<front>_rps``) and the CPU per request of the
front's own processes (``<front>_cpu_ms_per_request``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._gateway_processes import NGINX, nginx
from bench._load import gunicorn, tree_cpu_seconds, wrk, wrk_version
from bench.result import print_result
from tests.support.suite import TokenFactory, free_port, process

LUA_DIR = Path(__file__).resolve().parent / "nginx_lua"
LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
MODES = ("noaudit", "nosync", "full")
MISSING = ("the nginx Lua module is not installed: `apt-get install libnginx-mod-http-lua lua-resty-core "
           "lua-cjson` (Debian)")


def verifier_app():
    """The token check a cache miss asks for: the project's ``TokenVerifier`` over HTTP."""
    from flask import Flask, request

    from common.web.auth import InvalidToken, JWKSCache, TokenVerifier

    jwks = json.loads(Path(os.environ["XSN_BENCH_JWKS"]).read_text())
    verifier = TokenVerifier(issuer=os.environ["XSN_BENCH_ISSUER"], audience="xsn:bench",
                             jwks=JWKSCache(lambda: jwks))
    app = Flask("bench_verifier")

    @app.post("/_verify")
    def verify():
        try:
            return verifier.verify(request.get_data(as_text=True))
        except InvalidToken:
            return {"code": "invalid_token"}, 401

    @app.get("/livez")
    def livez():
        return {"status": "ok"}

    return app


@contextlib.contextmanager
def lua_nginx(upstream: str, verifier: str, work: Path, mode: str) -> Iterator[tuple[str, int]]:
    port, temp = free_port(), work / f"nginx-lua-{mode}"
    (temp / "spool").mkdir(parents=True)
    # nginx runs its workers as root here only because the benchmark runs as root and the spool
    # lies in its private temporary directory; never so in production.
    user = "user root;" if os.geteuid() == 0 else ""
    (temp / "nginx.conf").write_text(f"""
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module {LUA_MODULE};
{user}
env XSN_LUA_MODE;
worker_processes auto;
pid {temp}/nginx.pid;
error_log {temp}/error.log warn;
thread_pool audit threads=1;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
  lua_package_path "{LUA_DIR}/?.lua;;";
  lua_worker_thread_vm_pool_size 1;
  lua_shared_dict tokens 10m; lua_shared_dict limits 10m; lua_shared_dict revoked 1m;
  init_worker_by_lua_block {{ require("audit").init("{temp}/spool") }}
  upstream app {{ server {upstream.removeprefix('http://')}; keepalive 64; }}
  upstream verifier {{ server {verifier.removeprefix('http://')}; keepalive 4; }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{ content_by_lua_block {{ require("edge").handle() }} }}
    location /_up/ {{
      internal; rewrite ^/_up(/.*)$ $1 break;
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
    }}
    location = /_verify {{
      internal; proxy_pass http://verifier; proxy_http_version 1.1; proxy_set_header Connection "";
    }}
  }}
}}
""")
    argv = [NGINX, "-p", str(temp), "-e", f"{temp}/error.log", "-c", str(temp / "nginx.conf"), "-g", "daemon off;"]
    with process(argv, env=dict(os.environ, XSN_LUA_MODE=mode)) as proc:
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"nginx ({mode}) stopped: {(temp / 'error.log').read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}", proc.pid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if not os.path.exists(LUA_MODULE) or not shutil.which("nginx") and not os.path.exists(NGINX):
        raise SystemExit(MISSING)
    with tempfile.TemporaryDirectory(prefix="xsn-bench-lua-") as tmp:
        work = Path(tmp)
        tokens = TokenFactory(issuer="http://127.0.0.1:8000/identity")
        env = dict(os.environ, XSN_BENCH_JWKS=tokens.write_jwks(work / "jwks.json").removeprefix("file://"),
                   XSN_BENCH_ISSUER=tokens.issuer)
        token = tokens.token(aud=["xsn:bench"], scope="bench:read", client_id="bench-client", lifetime=3600)
        headers = {"Authorization": f"Bearer {token}"}
        with contextlib.ExitStack() as stack:
            upstream = stack.enter_context(gunicorn("bench.gateway:upstream_app()", threads=4))
            verifier = stack.enter_context(gunicorn("bench.gateway_nginx_lua:verifier_app()", env=env,
                                                    workers=1, threads=1))
            fronts: dict[str, tuple[str, int | None]] = {"direct": (upstream.url, None)}
            fronts["nginx"] = stack.enter_context(nginx(upstream.url, work))
            for mode in MODES:
                fronts[f"lua_{mode}"] = stack.enter_context(lua_nginx(upstream.url, verifier.url, work, mode))
            for name, (url, _pid) in fronts.items():  # warm-up: the spool's zeros, the token cache, pools
                warm = wrk(url + "/item", duration=2, connections=args.connections, headers=headers)
                if not warm.ok:
                    raise RuntimeError(f"{name}: {warm}")
            rounds: list[dict[str, dict]] = []
            for number in range(args.rounds):
                rounds.append({})
                for name, (url, pid) in fronts.items():
                    front_before, upstream_before = (tree_cpu_seconds(pid) if pid else 0.0), upstream.cpu_seconds()
                    result = wrk(url + "/item", duration=args.seconds, connections=args.connections,
                                 headers=headers)
                    if not result.ok:
                        raise RuntimeError(f"{name}: {result}")
                    per = 1000 / max(1, result.requests)
                    entry = {"rps": round(result.requests_per_s), "p50_ms": round(result.p50_ms, 2),
                             "p99_ms": round(result.p99_ms, 2),
                             "upstream_cpu_ms_per_request": round((upstream.cpu_seconds() - upstream_before) * per, 3)}
                    if pid:
                        entry["cpu_ms_per_request"] = round((tree_cpu_seconds(pid) - front_before) * per, 3)
                    rounds[-1][name] = entry
                    print(f"{name:12s} round {number + 1}: {entry}", flush=True)
    figures: dict = {"connections": args.connections, "cores": os.cpu_count(),
                     "load_generator": f"wrk ({wrk_version()}), 2 threads",
                     "upstream": "gunicorn 2 x gthread 4 threads"}
    for name in fronts:
        figures[f"{name}_rps"] = round(statistics.median(r[name]["rps"] for r in rounds))
        figures[f"{name}_p50_ms"] = round(statistics.median(r[name]["p50_ms"] for r in rounds), 2)
        if name != "direct":
            figures[f"{name}_added_p50_ms"] = round(statistics.median(
                r[name]["p50_ms"] - r["direct"]["p50_ms"] for r in rounds), 2)
            figures[f"{name}_cpu_ms_per_request"] = round(statistics.median(
                r[name]["cpu_ms_per_request"] for r in rounds), 3)
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    print_result(figures)


if __name__ == "__main__":
    main()
