"""``python -m gateway.edge --port 8000``: the gateway's front door.

One process embedded; ``--workers N`` (or ``XSN_GATEWAY_WORKERS``) forks N processes that
each bind the port with ``SO_REUSEPORT`` (production: one per core). Unless
``XSN_GATEWAY_ADMIN_URL`` names it, the gateway's own Flask app (API documents, auditor
API) is started here under gunicorn on a free loopback port and routed under ``/gateway``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_admin(config: dict) -> subprocess.Popen | None:
    if config.get("GATEWAY_ADMIN_URL"):
        return None
    from common.ops.launcher import gunicorn_argv

    port = _free_port()
    process = subprocess.Popen(gunicorn_argv("gateway:create_app()", port, 1, "xsn-gateway-admin"))
    config["GATEWAY_ADMIN_URL"] = f"http://127.0.0.1:{port}"
    os.environ["XSN_GATEWAY_ADMIN_URL"] = config["GATEWAY_ADMIN_URL"]
    return process


def _raise_fd_limit() -> None:
    """Idle connections are cheap here, but each holds a descriptor: allow what the system does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # no wheel for the platform: the standard loop works, slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(config: dict, host: str, port: int, reuse_port: bool, worker: str) -> None:
    from gateway.edge.app import Edge, listening_socket

    edge = Edge(config, listen_port=port, worker=worker)
    server = await edge.serve(listening_socket(host, port, reuse_port=reuse_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await edge.close()


def _run_worker(config: dict, host: str, port: int, reuse_port: bool, worker: str = "0") -> None:
    _use_uvloop()
    asyncio.run(_serve(config, host, port, reuse_port, worker))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.edge")
    parser.add_argument("--host", default=os.environ.get("XSN_GATEWAY_BIND", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    from common.web.logging import configure_logging
    from gateway.edge.app import load_config

    args = build_parser().parse_args(argv)
    config = load_config()
    configure_logging(config.get("LOG_LEVEL", "INFO"))
    from common.config import DEFAULT_PORTS

    port = args.port or DEFAULT_PORTS["gateway"]
    workers = args.workers or int(config["GATEWAY_WORKERS"])
    _raise_fd_limit()
    admin = _start_admin(config)
    try:
        if workers <= 1:
            _run_worker(config, args.host, port, reuse_port=False)
            return 0
        children = []
        for index in range(workers):
            pid = os.fork()
            if pid == 0:
                try:
                    # The fork index names the worker's audit spool: a restart reopens the same one.
                    _run_worker(config, args.host, port, reuse_port=True, worker=str(index))
                finally:
                    os._exit(0)
            children.append(pid)

        def forward(signum, _frame):
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for child in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        return 0
    finally:
        if admin is not None:
            admin.terminate()
            deadline = time.monotonic() + 5
            while admin.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if admin.poll() is None:
                admin.kill()


if __name__ == "__main__":
    sys.exit(main())
