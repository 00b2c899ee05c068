"""Test-harness helpers that are not fixtures: free ports, starting the real suite."""

from __future__ import annotations

import socket
from pathlib import Path

from common.config import SERVICES
from common.launcher import Suite


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_suite(var_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> Suite:
    """Migrate, seed and start every process of the suite on free ports.

    :raise RuntimeError: a process died or the suite was not ready in time.
    """
    suite = Suite(var_dir=var_dir, ports={s: free_port() for s in SERVICES}, workers=workers,
                  env=env or {}, log_dir=var_dir / "logs")
    suite.prepare()
    suite.start()
    try:
        suite.wait_ready(timeout=90)
    except Exception:
        suite.stop()
        raise
    return suite
