"""The launcher's gunicorn command lines: workers and threads per service (common.ops.launcher)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.ops import http_limits, launcher
from common.ops.launcher import THREADS, Suite, gunicorn_argv, service_concurrency


def _option(argv: list[str], name: str) -> str:
    """The value gunicorn takes for ``name``: the last one given wins."""
    return [argv[i + 1] for i, word in enumerate(argv) if word == name][-1]


def test_gunicorn_argv_defaults_to_four_threads_and_takes_others():
    argv = gunicorn_argv("seal:create_app()", 8002, 2, "xsn-seal")
    assert (_option(argv, "--workers"), _option(argv, "--threads"), argv[-1]) == ("2", "4", "seal:create_app()")
    assert THREADS == 4
    assert _option(gunicorn_argv("seal:create_app()", 8002, 3, "xsn-seal", threads=8), "--threads") == "8"
    assert "--reuse-port" in argv  # a socket per worker (see the burst test below)
    assert "--reuse-port" not in gunicorn_argv("seal:create_app()", 8002, 1, "xsn-seal")  # one worker: the arbiter's


def test_services_accept_every_request_line_the_gateways_edge_accepts():
    """gunicorn's default (4094) is shorter than the edge's (8190): a line between them got
    gunicorn's HTML 414 through the gateway instead of a problem document."""
    import runpy

    from gateway.config import SETTINGS

    edge = SETTINGS["GATEWAY_MAX_HEADER_BYTES"]
    assert _option(gunicorn_argv("seal:create_app()", 8002, 2, "xsn-seal"), "--limit-request-line") == str(edge)
    deployed = runpy.run_path(str(Path(launcher.__file__).parents[2] / "deploy" / "gunicorn.conf.py"))
    assert deployed["limit_request_line"] == edge


def _edge_forwarded_head(fields: list[tuple[str, str]]) -> bytes:
    """The head the edge sends upstream for a request with ``fields`` (each client field it
    forwards, then the ones it adds, written as gateway.edge.upstream_http writes them), for the
    most it adds: a caller with every X-XSN-* header, and a body."""
    from gateway.edge.boundary import Boundary, caller_headers, forwarding_headers, upstream_headers

    boundary = Boundary.from_settings("https://xsn.example")
    sent = upstream_headers(fields, [])
    sent += forwarding_headers(client="203.0.113.7", boundary=boundary, prefix="/licenses", request_id="r" * 32)
    sent += caller_headers({"client_id": "c", "sub": "s", "scope": "a b", "jti": "j", "acr": "2"})
    lines = ["POST /x HTTP/1.1", "Host: 127.0.0.1:8003", *(f"{n}: {v}" for n, v in sent), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _gunicorn_parses(argv: list[str], head: bytes) -> int:
    """How many header fields gunicorn, configured by ``argv``'s limits, reads from ``head``.

    :raise gunicorn.http.errors.LimitRequestHeaders: gunicorn would answer 431.
    """
    from gunicorn.config import Config
    from gunicorn.http.parser import RequestParser

    cfg = Config()
    cfg.set("limit_request_fields", int(_option(argv, "--limit-request-fields")))
    cfg.set("limit_request_field_size", int(_option(argv, "--limit-request-field_size")))
    return len(next(iter(RequestParser(cfg, iter([head]), ("127.0.0.1", 1)))).headers)


def test_services_accept_every_header_field_the_gateways_edge_lets_through():
    """gunicorn's defaults (100 fields, 8190 bytes a line) were below the edge's: a request of
    97-100 fields (the edge adds its own) or with a value of 8182-8189 bytes (gunicorn counts the
    name too) passed the edge and got gunicorn's HTML 431 instead of reaching the service."""
    import runpy

    from gunicorn.http.errors import LimitRequestHeaders

    from gateway.config import SETTINGS

    # The defaults mirrored in common (it may not import the gateway) are the gateway's.
    mirrored = (http_limits.EDGE_MAX_HEADERS, http_limits.EDGE_MAX_HEADER_BYTES)
    assert mirrored == (SETTINGS["GATEWAY_MAX_HEADERS"], SETTINGS["GATEWAY_MAX_HEADER_BYTES"])
    # The edge adds no more fields than counted (here: its most, to a request of one field).
    assert _edge_forwarded_head([("Accept", "*/*")]).count(b"\r\n") - 3 <= http_limits.EDGE_ADDED_HEADERS

    argv = gunicorn_argv("seal:create_app()", 8002, 2, "xsn-seal")
    most = SETTINGS["GATEWAY_MAX_HEADERS"]
    longest = SETTINGS["GATEWAY_MAX_HEADER_BYTES"] - 1  # the edge's limit for a name, and for a value
    many = [(f"X-Field-{i}", "v") for i in range(most - 1)]  # and Host, which the edge replaces
    assert _gunicorn_parses(argv, _edge_forwarded_head(many)) >= most - 1
    assert _gunicorn_parses(argv, _edge_forwarded_head([("N" * longest, "v" * longest)])) >= 1
    assert _gunicorn_parses(argv, _edge_forwarded_head([("X-Long", "v" * 8182)])) >= 1
    # Still a limit: one byte more than the edge lets through is refused.
    with pytest.raises(LimitRequestHeaders):
        _gunicorn_parses(argv, _edge_forwarded_head([("N" * longest, "v" * (longest + 1))]))

    deployed = runpy.run_path(str(Path(launcher.__file__).parents[2] / "deploy" / "gunicorn.conf.py"))
    assert (deployed["limit_request_fields"], deployed["limit_request_field_size"]) == (
        int(_option(argv, "--limit-request-fields")), int(_option(argv, "--limit-request-field_size")))


def test_the_header_limits_follow_the_gateways_settings_in_the_environment():
    fields, size = http_limits.upstream_header_limits({"XSN_GATEWAY_MAX_HEADERS": "200",
                                                    "XSN_GATEWAY_MAX_HEADER_BYTES": "4096"})
    assert fields == 200 + http_limits.EDGE_ADDED_HEADERS + http_limits.ADDED_HEADERS_MARGIN
    assert size == 4095 + len(": ") + 4095 + len("\r\n")
    assert http_limits.upstream_header_limits({}) == http_limits.upstream_header_limits({"XSN_GATEWAY_MAX_HEADERS": ""})


def test_a_service_takes_the_suites_settings_unless_it_or_the_environment_says_otherwise(monkeypatch):
    from identity import processes

    assert service_concurrency("identity", {}, 2, 4) == (2, 4)
    monkeypatch.setattr(processes, "GUNICORN_THREADS", 12, raising=False)
    assert service_concurrency("identity", {}, 2, 4) == (2, 12)
    env = {"XSN_IDENTITY_GUNICORN_WORKERS": "3", "XSN_IDENTITY_GUNICORN_THREADS": "6"}
    assert service_concurrency("identity", env, 2, 4) == (3, 6)  # the environment wins
    assert service_concurrency("messaging", env, 2, 4) == (2, 4)  # only the service named
    for bad in ("0", "many"):
        with pytest.raises(ValueError):
            service_concurrency("identity", {"XSN_IDENTITY_GUNICORN_THREADS": bad}, 2, 4)


def test_the_suite_starts_each_service_with_its_workers_and_threads(tmp_path, monkeypatch):
    spawned: dict[str, list[str]] = {}
    monkeypatch.setattr(Suite, "check_ports_free", lambda self: None)
    monkeypatch.setattr(Suite, "_spawn", lambda self, name, argv, env: spawned.__setitem__(name, argv))
    monkeypatch.setattr(launcher, "extra_processes", lambda suite: {})

    Suite(var_dir=tmp_path).start()
    assert {s: (_option(spawned[s], "--workers"), _option(spawned[s], "--threads"))
            for s in ("identity", "messaging")} == {s: ("2", "4") for s in ("identity", "messaging")}
    assert {s: (_option(spawned[s], "--workers"), _option(spawned[s], "--threads"))
            for s in ("seal", "licenses")} == {s: ("2", "16") for s in ("seal", "licenses")}
    assert spawned["gateway"][1:3] == ["-m", "gateway.edge"]  # the edge, not gunicorn

    spawned.clear()
    Suite(var_dir=tmp_path, workers=1, threads=2, env={"XSN_SEAL_GUNICORN_THREADS": "8"}).start()
    assert (_option(spawned["identity"], "--workers"), _option(spawned["identity"], "--threads")) == ("1", "2")
    assert (_option(spawned["seal"], "--workers"), _option(spawned["seal"], "--threads")) == ("1", "8")


PID_APP = '''
import os


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(str(os.getpid()))))])
    return [str(os.getpid()).encode()]
'''


def test_a_burst_of_kept_alive_connections_is_spread_over_the_workers(tmp_path):
    """Each worker listens on its own SO_REUSEPORT socket: 16 connections opened at once reach
    both workers. On gunicorn's one shared socket such a burst mostly went to one worker, where
    the connections stay while kept alive (docs/ARCHITECTURE.md "How a service is served")."""
    import http.client

    from tests.support.proc_stat import children
    from tests.support.suite import free_port, process, wait_for

    (tmp_path / "pid_app.py").write_text(PID_APP)
    port = free_port()
    argv = gunicorn_argv("pid_app:app", port, 2, "xsn-spread-test", ("--chdir", str(tmp_path)))
    with process(argv, stop_wait_s=15, log=tmp_path / "gunicorn.log") as server:

        def started() -> bool:
            assert server.poll() is None, "gunicorn exited"
            return len(children(server.pid)) >= 2 and _listeners(port) > 0

        wait_for(started, 30, "gunicorn's start", interval=0.1)
        # the second worker binding its own
        wait_for(lambda: _listeners(port) >= 2, 10, "a second listening socket", interval=0.1)
        assert _listeners(port) == 2  # one per worker, not the arbiter's one shared by both
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(16)]
        for connection in connections:  # all open before the first request
            connection.connect()
        answered_by = set()
        for connection in connections:
            connection.request("GET", "/")
            answered_by.add(connection.getresponse().read())
            connection.close()
        assert len(answered_by) == 2  # all 16 on one of two sockets: probability 2 in 65,536
    # The arbiter itself holds no socket; its start-up line still says where the service listens
    # (gunicorn alone wrote "Listening at:  (<pid>)"; common.ops.gunicorn_hooks).
    assert f"Listening at: http://127.0.0.1:{port}, a SO_REUSEPORT socket per worker ({server.pid})" in \
        (tmp_path / "gunicorn.log").read_text()


def _listeners(port: int) -> int:
    """How many sockets listen on ``port`` on loopback (from ``/proc/net/tcp``)."""
    with open("/proc/net/tcp") as handle:
        rows = [line.split() for line in handle.readlines()[1:]]
    return sum(1 for row in rows if row[1] == f"0100007F:{port:04X}" and row[3] == "0A")


def test_the_suites_services_take_the_header_limits_from_the_environment_the_suite_gives_the_edge():
    # The suite's children get Suite.child_env(), which may differ from the launcher's own
    # os.environ: the services' limits must come from where the edge reads its own.
    argv = gunicorn_argv("seal:create_app()", 8002, 2, "xsn-seal", environ={"XSN_GATEWAY_MAX_HEADERS": "200"})
    assert _option(argv, "--limit-request-fields") == str(
        200 + http_limits.EDGE_ADDED_HEADERS + http_limits.ADDED_HEADERS_MARGIN)


def test_the_edge_and_gunicorn_s_config_read_the_limits_without_the_process_launcher():
    # The edge and deploy/gunicorn.conf.py need four numbers, not the module that starts
    # processes (subprocess, signal, requests): both import common.ops.http_limits.
    import subprocess
    import sys

    code = ("import sys, runpy, gateway.edge.app; runpy.run_path('deploy/gunicorn.conf.py'); "
            "print('common.ops.launcher' in sys.modules)")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[2])
    assert imported.stdout.strip() == "False", imported.stderr
