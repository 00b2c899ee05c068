"""Starts the whole suite as separate processes: ``xsn run`` and the end-to-end tests.

Each service runs under gunicorn on its own port with its own SQLite file (or the database
its ``XSN_<SERVICE>_DATABASE_URL`` names); a Celery worker consumes the broker. The same
class starts the suite on free ports in a temporary directory for end-to-end tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from common.config import DEFAULT_PORTS, SERVICES, service_modules
from common.http import ServiceClient
from common.ops.http_limits import MAX_REQUEST_LINE, upstream_header_limits

# Start order: the gateway last, after what it routes to.
START_ORDER = ("identity", "seal", "licenses", "payment", "messaging", "gateway")
THREADS = 4  # gthread threads per gunicorn worker, as deploy/gunicorn.conf.py


@dataclass
class Suite:
    var_dir: Path
    # Services and the extra processes services declare (simulators, sinks): name -> port.
    ports: dict[str, int] = field(default_factory=lambda: dict(all_default_ports()))
    workers: int = 2  # gunicorn workers per service, unless the service sets its own (service_concurrency)
    threads: int = THREADS  # threads per worker, likewise
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: children inherit our stdout/stderr
    demo_apps: bool = False  # `xsn run` also starts demo relying parties on fixed ports
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def base_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["XSN_VAR_DIR"] = str(self.var_dir)
        env.setdefault("XSN_BROKER_URL", f"sqla+sqlite:///{self.var_dir / 'celery-broker.db'}")
        for service in SERVICES:
            env[f"XSN_{service.upper()}_URL"] = self.base_url(service)
        env["XSN_PUBLIC_BASE_URL"] = self.base_url("gateway")
        for _service, module in service_modules("processes"):
            env.update(getattr(module, "env", lambda _suite: {})(self))
        env.update(self.env)
        return env

    # -- preparing --------------------------------------------------------------------
    def prepare(self) -> None:
        """Migrate every service's database and seed the demo data (both idempotent)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "common.ops.cli", "migrate"], env=self.child_env(), check=True)
        subprocess.run([sys.executable, "-m", "common.ops.cli", "seed"], env=self.child_env(), check=True)

    # -- running ----------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed right after the fork
        try:
            # A new session per child so stop() can signal the whole process group.
            self.processes[name] = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)
        finally:
            if out is not None:
                out.close()  # the child holds its own descriptor

    def check_ports_free(self) -> None:
        """:raise RuntimeError: a port is taken (another ``make run`` still running?)."""
        import socket

        for name, port in self.ports.items():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"port {port} for {name} is already in use: is another `make run` running?")

    def start(self) -> None:
        self.check_ports_free()
        env = self.child_env()
        for service in START_ORDER:
            prom_dir = self.var_dir / "run" / "prometheus" / service
            shutil.rmtree(prom_dir, ignore_errors=True)
            prom_dir.mkdir(parents=True)
            service_env = dict(env, PROMETHEUS_MULTIPROC_DIR=str(prom_dir))
            workers, threads = service_concurrency(service, env, self.workers, self.threads)
            argv = gunicorn_argv(f"{service}:create_app()", self.ports[service], workers, f"xsn-{service}",
                                 threads=threads, environ=env)
            if service == "gateway":  # the asyncio edge; it starts the gateway's Flask app behind itself
                argv = [sys.executable, "-m", "gateway.edge", "--port", str(self.ports[service])]
            self._spawn(service, argv, service_env)
        # One worker with the beat scheduler embedded (-B): the periodic tasks (the seal log's
        # checkpoints) need exactly one scheduler, and one process is enough on a laptop.
        # Deployments run beat as its own process (docker-compose.yml, deploy/k8s). The embedded
        # beat logs at WARNING (common.ops.tasks): its "Sending due task" every second buried the rest.
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "common.ops.tasks", "worker",
                               "--loglevel", "INFO", "--concurrency", "1", "--pool", "solo",
                               "--beat", "--schedule", str(self.var_dir / "run" / "celerybeat-schedule"),
                               "--hostname", f"xsn-worker-{os.getpid()}@%h"], env)
        for name, argv in extra_processes(self).items():
            self._spawn(name, argv, env)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every service answers ``/readyz``.

        :raise RuntimeError: a process exited or a service did not become ready in time.
        """
        deadline = time.monotonic() + timeout
        pending = set(START_ORDER)
        # Polled every 0.2 s: no retries of its own, and a short timeout.
        clients = {service: ServiceClient(self.base_url(service), timeout=1, retries=0) for service in pending}
        while pending:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} during start-up")
            for service in sorted(pending):
                try:
                    if clients[service].get("/readyz").status_code == 200:
                        pending.discard(service)
                except requests.RequestException:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()


def gunicorn_argv(target: str, port: int, workers: int, name: str, extra: list[str] | tuple[str, ...] = (),
                  *, threads: int = THREADS, environ: Mapping[str, str] | None = None) -> list[str]:
    """gunicorn for one app on loopback, ``workers`` gthread workers of ``threads`` threads
    (``extra``: the service's own options, before the app).

    Each instance disables gunicorn's control socket: its default path is one per user, so
    several instances (the suite, end-to-end tests, benchmarks) would fight over it. No gunicorn
    access log: each request's line comes from the app (JSON with request id, client and
    subject; common.web.observability), as in the containers (deploy/gunicorn.conf.py).
    gthread workers keep the gateway's connections alive (sync workers close each after one
    answer, and a new connection per request cost the gateway's edge ~1.5 ms of CPU: 2.0-2.1
    against 0.46-0.56 ms per request measured through the suite); keep-alive longer than the
    edge keeps an idle pooled connection (15 s), so the service does not close one under it.

    ``--limit-request-line``: as long a request line as the gateway's edge accepts
    (``MAX_REQUEST_LINE``); with gunicorn's default of 4094 a line between the two got
    gunicorn's HTML "414 URI Too Long" through the gateway instead of a problem document.
    ``--limit-request-fields`` and ``--limit-request-field_size``: likewise for header fields
    (``upstream_header_limits``, from ``environ``: the environment the suite gives its children,
    where the edge reads its limits too; ``os.environ`` if None).

    ``--reuse-port``: each worker listens on its own ``SO_REUSEPORT`` socket and the kernel
    spreads new connections over them by their addresses. On the arbiter's one shared socket,
    whichever worker is awake accepts, and a burst of new connections (the edge's pool filling,
    wrk's 32) mostly landed on one worker (32/0 in 8 of 10 runs), where they stay while kept
    alive: one process, one GIL, and the service's throughput halved at random
    (docs/ARCHITECTURE.md "How a service is served"). The caller makes sure the port is free:
    a second instance of the same user would share it (``Suite.check_ports_free``). One worker
    has nobody to share with and keeps the arbiter's socket, which holds new connections while
    a dead worker is replaced. With ``--reuse-port`` gunicorn's start-up line names no socket:
    ``common.ops.gunicorn_hooks`` fills in the address.
    """
    spread = ["--reuse-port"] if workers > 1 else []
    fields, field_size = upstream_header_limits(environ)
    return [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gthread",
            "--threads", str(threads), "--keep-alive", "20", *spread, "--bind", f"127.0.0.1:{port}",
            "--limit-request-line", str(MAX_REQUEST_LINE),
            "--limit-request-fields", str(fields), "--limit-request-field_size", str(field_size),
            "--graceful-timeout", "5", "--no-control-socket", "--error-logfile", "-",
            "--config", "python:common.ops.gunicorn_hooks", "--name", name, *extra, target]


def service_concurrency(service: str, env: dict[str, str], workers: int, threads: int) -> tuple[int, int]:
    """A service's gunicorn workers and threads per worker: ``XSN_<SERVICE>_GUNICORN_WORKERS`` /
    ``XSN_<SERVICE>_GUNICORN_THREADS`` in ``env``, else ``GUNICORN_WORKERS`` / ``GUNICORN_THREADS``
    in ``<service>.processes``, else the suite's ``workers`` / ``threads``.

    :raise ValueError: a setting that is not a positive integer.
    """
    module = dict(service_modules("processes")).get(service)
    chosen = []
    for setting, default in (("WORKERS", workers), ("THREADS", threads)):
        value = env.get(f"XSN_{service.upper()}_GUNICORN_{setting}") or getattr(module, f"GUNICORN_{setting}", default)
        if int(value) < 1:
            raise ValueError(f"{service}: gunicorn {setting.lower()} must be at least 1, not {value!r}")
        chosen.append(int(value))
    return chosen[0], chosen[1]


def summaries(suite: Suite) -> list[str]:
    """Lines each service wants a person to see once the suite is up (demo accounts, apps)."""
    lines: list[str] = []
    for _service, module in service_modules("processes"):
        if hasattr(module, "summary"):
            lines.extend(module.summary(suite))
    return lines


def all_default_ports() -> dict[str, int]:
    """The services' ports and those of the extra processes services declare in their
    ``<service>.processes.PORTS`` (e.g. the payment channel simulator's 8009)."""
    ports = dict(DEFAULT_PORTS)
    for _service, module in service_modules("processes"):
        ports.update(getattr(module, "PORTS", {}))
    return ports


def extra_processes(suite: Suite) -> dict[str, list[str]]:
    """Processes a service adds to the suite (simulators, sinks): ``<service>.processes``."""
    extras: dict[str, list[str]] = {}
    for _service, module in service_modules("processes"):
        extras.update(module.processes(suite))
    return extras
