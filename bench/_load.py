"""HTTP load for the benchmarks: Debian ``wrk`` driven from Python, and gunicorn to serve an app.

Python client threads cannot load a gunicorn server on the same machine: they reach a
fraction of what the server can do, and every ratio between two endpoints is squeezed
toward 1. ``wrk`` is compiled, event-driven and cheap; it still shares the machine, so each
run reports the CPU seconds wrk itself used (``wrk_cpu_s``) for a reader to see what the
server had.

API (kept small and stable; the benchmarks of every service import it)::

    result = wrk(url, duration=5, connections=16, threads=2, method="POST",
                 body=b"...", headers={"Content-Type": "application/json"},
                 unique_header="Idempotency-Key")
    result.requests_per_s, result.p50_ms, result.p90_ms, result.p99_ms, result.errors,
    result.non2xx, result.wrk_cpu_s, result.requests, result.duration_s

    with gunicorn("identity:create_app()", env=env, workers=2) as server:
        server.url, server.pid, server.cpu_seconds()   # CPU of the workers so far

    with gunicorn(BARE_FLASK, workers=2) as bare:      # the floor: Flask returning {"status": "ok"}
        wrk(bare.url + "/livez", ...)

    url = scratch_database(server_url, "xsn_bench_x")  # a fresh PostgreSQL database; its URL
    drop_database(server_url, "xsn_bench_x")           # and gone again (connections closed)

``lua`` takes a wrk script of your own (e.g. a ``request()`` function); the helper appends
its own ``done()`` to read the figures, so the script must not define ``done``.
``paced_lua(mean_ms)`` is such a script: each connection pauses a random think time before
each request, so the load is offered at a rate rather than as fast as the server answers.

Processes are started, stopped and waited for with ``tests.support.suite``'s helpers (the ones
the end-to-end tests use, as the benchmarks already take ``TokenFactory`` from there): the
benchmarks run from a checkout, as ``python -m bench.<name>`` from its root, never from an
installed package.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.ops.launcher import gunicorn_argv
from tests.support.proc_stat import cpu_seconds, cpu_seconds_of, stat_fields
from tests.support.suite import ROOT, free_port, process, wait_ready

INSTALL_HINT = ("wrk (the HTTP load generator) is not installed: `apt-get install wrk` on Debian/Ubuntu, "
                "`brew install wrk` on macOS, or set XSN_WRK to its path")
_MARK = "XSN_WRK_RESULT "

# Appended to every script: wrk calls done() once, after all threads finish, with the
# summary (durations in microseconds). "status" errors are responses outside 2xx/3xx.
_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MARK{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), e.connect, e.read, e.write, e.timeout, e.status))
end
""".replace("MARK", _MARK)

# Lua for wrk: each thread's number (1, 2, ...) as the global ``xsn_thread`` in that thread, set
# by setup() before it starts; for request() to make values no other thread makes.
WRK_THREAD_NUMBER = """
local threads_started = 0
function setup(thread)
  threads_started = threads_started + 1
  thread:set("xsn_thread", threads_started)
end
"""

# A value unique to each request for ``unique_header`` (e.g. Idempotency-Key): a random
# prefix per run, the wrk thread's number (WRK_THREAD_NUMBER) and a counter.
_UNIQUE = WRK_THREAD_NUMBER + """
local counter = 0
function request()
  counter = counter + 1
  wrk.headers[HEADER] = string.format("%s-%d-%d", PREFIX, xsn_thread or 0, counter)
  return wrk.format()
end
"""


# wrk's delay() is called before each request of a connection and returns the milliseconds to
# wait (whole milliseconds: wrk truncates). Exponential think times make the arrivals of many
# connections a Poisson process, as independent clients' are; a fixed pause would keep the
# connections in step, all sending at once, and measure the burst's queue instead. Each wrk
# thread has its own Lua state, seeded from its own address so the threads do not repeat
# each other's sequence.
_PACED = """
local mean_ms = MEAN
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end
function delay()
  return -mean_ms * math.log(1 - math.random())
end
"""


def paced_lua(mean_ms: float) -> str:
    """A wrk script whose connections each pause an exponential think time of mean ``mean_ms``
    before every request: with ``c`` connections the offered rate is about ``c / (mean_ms +
    latency)`` per millisecond, whatever the server could do."""
    if mean_ms <= 0:
        raise ValueError("mean_ms must be positive")
    return _PACED.replace("MEAN", repr(float(mean_ms)))


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int  # socket errors: connect, read, write, timeout
    non2xx: int  # responses outside 2xx/3xx
    wrk_cpu_s: float  # user + system CPU seconds wrk itself used
    requests: int
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.non2xx == 0 and self.requests > 0


def wrk_path() -> str:
    """:raise SystemExit: wrk is missing, saying how to install it."""
    path = os.environ.get("XSN_WRK") or shutil.which("wrk")
    if not path:
        raise SystemExit(INSTALL_HINT)
    return path


def wrk_version() -> str:
    """The first line ``wrk -v`` prints (e.g. ``wrk 4.1.0 [epoll] ...``), for the record."""
    proc = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "wrk"


def lua_string(value: str | bytes) -> str:
    """A Lua string literal holding ``value`` byte for byte."""
    data = value.encode() if isinstance(value, str) else value
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\' or not (32 <= byte < 127):
            out.append(f"\\{byte:03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _script(method: str, body: str | bytes | None, headers: Mapping[str, str] | None,
            unique_header: str | None, lua: str | None) -> str:
    lines = [f"wrk.method = {lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if unique_header:
        lines.append(_UNIQUE.replace("HEADER", lua_string(unique_header))
                     .replace("PREFIX", lua_string(os.urandom(6).hex())))
    if lua:
        lines.append(lua)
    lines.append(_DONE)
    return "\n".join(lines)


def wrk(url: str, *, duration: float, connections: int, threads: int = 2, method: str = "GET",
        body: str | bytes | None = None, headers: Mapping[str, str] | None = None,
        unique_header: str | None = None, lua: str | None = None, timeout_s: int = 10) -> WrkResult:
    """Load ``url`` for ``duration`` seconds (whole seconds, at least 1) over ``connections``
    keep-alive connections from ``threads`` wrk threads."""
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(_script(method, body, headers, unique_header, lua))
        script = handle.name
    try:
        argv = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
                f"--timeout={timeout_s}s", "-s", script, url]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with proc.stdout:
            output = proc.stdout.read().decode(errors="replace")
        # wait4 gives this child's own CPU, whatever else this process has running.
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        os.unlink(script)
    line = next((ln for ln in output.splitlines() if ln.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {output[-2000:]}")
    raw = json.loads(line.removeprefix(_MARK))
    seconds = raw["duration_us"] / 1e6
    return WrkResult(
        requests_per_s=raw["requests"] / seconds if seconds else 0.0,
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"], non2xx=raw["status"],
        wrk_cpu_s=usage.ru_utime + usage.ru_stime, requests=raw["requests"], duration_s=seconds)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its direct children (a gunicorn
    arbiter and its workers), from ``/proc``; 0 where ``/proc`` does not exist."""
    return cpu_seconds_of(lambda found, parent: pid in (found, parent))


def machine_busy_seconds() -> float | None:
    """CPU seconds all of the machine's cores have spent busy (not idle or waiting on I/O) since
    boot, from ``/proc/stat``; ``None`` where it does not exist."""
    try:
        with open("/proc/stat") as handle:
            ticks = [int(x) for x in handle.readline().split()[1:]]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: guest and guest_nice (after these) are
    # already counted in user and nice.
    ticks = ticks[:8]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def bare_flask_app():
    """The floor every service is compared with: Flask alone, ``GET /livez`` -> ``{"status": "ok"}``."""
    from flask import Flask

    app = Flask("bare")

    @app.get("/livez")
    def livez():
        return {"status": "ok"}

    return app


BARE_FLASK = "bench._load:bare_flask_app()"


@dataclass
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)


@contextlib.contextmanager
def gunicorn(target: str, *, env: Mapping[str, str] | None = None, workers: int = 2, ready_path: str = "/livez",
             cwd: str | Path | None = None, timeout_s: float = 60.0, threads: int = 0) -> Iterator[Server]:
    """``target`` (``module:callable()``) under gunicorn with ``workers`` sync workers on a
    free loopback port, without access logs (the same way for every app a benchmark compares);
    stopped on exit. ``threads`` > 0: gthread workers with that many threads each, which keep
    client connections alive (sync workers close each after one answer), served exactly as
    ``xsn run`` serves a service (``common.ops.launcher.gunicorn_argv``: keep-alive, a
    ``SO_REUSEPORT`` socket per worker so wrk's connections are spread over the workers)."""
    port = free_port()
    if threads > 0:
        argv = gunicorn_argv(target, port, workers, "xsn-bench", ("--log-level", "warning"), threads=threads)
    else:
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                "--keep-alive", "30", "--log-level", "warning", "--no-control-socket", target]
    url = f"http://127.0.0.1:{port}"
    with process(argv, env=env if env is not None else os.environ, cwd=cwd or ROOT) as server:
        wait_ready(url + ready_path, timeout_s, proc=server)
        yield Server(url, server.pid)


def scratch_database(url: str, name: str) -> str:
    """A fresh, empty database ``name`` on the PostgreSQL server of ``url`` (any database there;
    an existing ``name`` is dropped first); returns its URL."""
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``url``, closing its connections (no error when
    it is gone already)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def database_cpu(db_url: str | None) -> dict[tuple[int, int], float] | None:
    """CPU seconds used so far by each PostgreSQL backend connected to ``db_url``'s database,
    keyed by (pid, start time), so that a pid reused by a new backend is another key; ``None``
    for SQLite or for a server on another machine (its processes are not in ``/proc``). A
    request's cost on a shared machine includes them: they take the same cores as the server,
    which ``/livez`` never asks of them. The cluster's WAL writer and checkpointer are not
    counted. :func:`cpu_between` turns two samples into a phase's CPU."""
    if not db_url or not db_url.startswith("postgresql"):
        return None
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND pid <> pg_backend_pid()")).scalars().all()
    finally:
        engine.dispose()
    cpu = {}
    for pid in pids:
        fields = stat_fields(pid)
        if fields is None:  # gone since, or not on this machine
            continue
        cpu[(pid, int(fields[19]))] = cpu_seconds(fields)  # 19: the process's start time
    return cpu if cpu or not pids else None


def cpu_between(before: dict[tuple[int, int], float], after: dict[tuple[int, int], float] | None) -> float:
    """The backends' CPU seconds between two :func:`database_cpu` samples: each one's growth, and
    the whole of one that started meanwhile (a pool opening a connection). One that closed before
    the second sample is not counted (its CPU since the first is unknown), so a phase in which
    backends close reads low, never high."""
    return sum(cpu - before.get(key, 0.0) for key, cpu in (after or {}).items())
