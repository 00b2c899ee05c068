"""Test-harness helpers that are not fixtures: free ports, a WSGI app served in a thread, a real
process started and stopped, waiting until something is so, starting the real suite."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import requests
from sqlalchemy import Engine, create_engine

from common.ops.launcher import Suite, all_default_ports

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """A WSGI app served over real HTTP by werkzeug's threaded server in a thread of this process:
    on 127.0.0.1 at ``port`` (one the system picks, by default), or on the Unix socket at
    ``unix_socket``; ``url`` is ``http://127.0.0.1:<port>`` or ``unix://<path>``. Stopped by
    :meth:`stop` or at the end of a ``with`` block. The ``serve_app`` fixture is this per test.
    """

    def __init__(self, app: Callable, *, port: int = 0, unix_socket: str | Path | None = None) -> None:
        from werkzeug.serving import make_server

        if unix_socket is not None:
            self.server = make_server(f"unix://{unix_socket}", 0, app, threaded=True)
            self.url = f"unix://{unix_socket}"
        else:
            self.server = make_server("127.0.0.1", port, app, threaded=True)
            self.url = f"http://127.0.0.1:{self.server.server_port}"
        # A short poll interval: shutdown() waits for it.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_for(check: Callable[[], T], timeout: float, what: str = "it", interval: float = 0.5) -> T:
    """``check()``'s first truthy answer, asked every ``interval`` seconds; an assertion ``check``
    fails (a process it watches died) ends the wait at once.

    :raise AssertionError: ``what`` did not happen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
               interval: float = 0.2) -> None:
    """Until ``url`` answers 200.

    :raise RuntimeError: ``proc`` (the process that should answer) exits, or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url} did not come up: its process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up within {timeout:.0f}s")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen, *, wait_s: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started: TERM to
    its group, KILL after ``wait_s``; a group already gone (a test killed it) is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # a process stuck in the kernel may outlive even KILL for a while: the caller's own
        # clean-up (dropping its scratch database) must still run
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def spawn(argv: list[str], *, env: Mapping[str, str] | None = None, log: Path | None = None,
          cwd: str | Path = ROOT) -> subprocess.Popen:
    """``argv`` started in a process group of its own, in ``cwd`` (the repository root), its
    output appended to ``log`` (or nowhere). Stopping it is the caller's (``stop_group``): for a
    process a test stops and starts again midway (a crash, an outage); otherwise use
    :func:`process`."""
    env = dict(env) if env is not None else None
    if log is None:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                start_new_session=True)
    with open(log, "ab") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


@contextlib.contextmanager
def process(argv: list[str], *, env: Mapping[str, str] | None = None, log: Path | None = None,
            cwd: str | Path = ROOT, stop_wait_s: float = 10.0) -> Iterator[subprocess.Popen]:
    """``argv`` as :func:`spawn` starts it; the group stopped on exit (``stop_group``), whatever
    the test did, so a failed test leaves no process behind."""
    proc = spawn(argv, env=env, log=log, cwd=cwd)
    try:
        yield proc
    finally:
        stop_group(proc, wait_s=stop_wait_s)


def beat_worker_argv(var: Path, hostname: str) -> list[str]:
    """A Celery worker of the suite's tasks with two processes and beat in it (its schedule file
    in ``var``), as the messaging fault-tolerance test and bench.messaging run it."""
    return [sys.executable, "-m", "celery", "-A", "common.ops.tasks", "worker", "--loglevel", "WARNING",
            "--concurrency", "2", "--beat", "--schedule", str(var / "beat"), "--hostname", hostname]


def start_suite(var_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> Suite:
    """Migrate, seed and start every process of the suite on free ports.

    :raise RuntimeError: a process died or the suite was not ready in time.
    """
    suite = Suite(var_dir=var_dir, ports={name: free_port() for name in all_default_ports()}, workers=workers,
                  env=env or {}, log_dir=var_dir / "logs")
    suite.prepare()
    suite.start()
    try:
        suite.wait_ready(timeout=90)
    except Exception:
        suite.stop()
        raise
    return suite


@contextlib.contextmanager
def service_database(suite: Suite, service: str) -> Iterator[Engine]:
    """An engine on one started service's database, disposed after: an engine left to the
    garbage collector closes its pooled PostgreSQL connection with a ResourceWarning, which
    pytest reports in whichever later test the collector happens to run."""
    url = (suite.child_env().get(f"XSN_{service.upper()}_DATABASE_URL")
           or f"sqlite:///{suite.var_dir / (service + '.db')}")
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def client_token(suite: Suite, client_id: str, secret: str | None = None, **data: str) -> dict:
    """A client-credentials token response from the running suite's identity node, through the gateway.

    ``secret`` defaults to the demo secret identity's seed wrote to ``<var_dir>/clients.json``;
    ``data`` adds form fields (``scope``, ``resource``).

    :raise AssertionError: identity refused.
    """
    if secret is None:
        secret = json.loads((suite.var_dir / "clients.json").read_text())[client_id]["client_secret"]
    response = requests.post(f"{suite.base_url('gateway')}/identity/oauth/token", timeout=10,
                             auth=(client_id, secret), data={"grant_type": "client_credentials", **data})
    assert response.status_code == 200, response.text
    return response.json()


class TokenFactory:
    """Mints RFC 9068 access tokens with a local ES256 key, for tests and benchmarks.

    ``install(app)`` makes the app's verifier trust this factory's JWKS instead of
    identity's; ``write_jwks(path)`` pins the JWKS in a file for processes started with
    ``XSN_OAUTH_JWKS_URL=file://...``.
    """

    def __init__(self, issuer: str = "http://127.0.0.1:8000/identity") -> None:
        from joserfc.jwk import ECKey

        self.issuer = issuer
        self.key = ECKey.generate_key("P-256", parameters={"kid": "test-key-1", "use": "sig", "alg": "ES256"})

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def write_jwks(self, path: Path) -> str:
        path.write_text(json.dumps(self.jwks()))
        return f"file://{path}"

    def install(self, app) -> None:
        from common.web.auth import JWKSCache, TokenVerifier, resolved_settings

        settings = resolved_settings(app)
        app.extensions["xsn_token_verifier"] = TokenVerifier(
            issuer=self.issuer, audience=settings["audience"], jwks=JWKSCache(self.jwks))

    def token(self, *, sub: str = "person-1", scope: str = "", aud: str | list[str] = "xsn:seal",
              client_id: str = "test-client", lifetime: int = 300, header: dict | None = None,
              key=None, **claims) -> str:
        import time
        import uuid

        from joserfc import jwt

        now = int(time.time())
        payload = {"iss": self.issuer, "sub": sub, "aud": aud, "client_id": client_id, "scope": scope,
                   "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        protected = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        protected.update(header or {})
        return jwt.encode(protected, payload, key or self.key, algorithms=[protected["alg"]])

    def bearer(self, **kwargs) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}
