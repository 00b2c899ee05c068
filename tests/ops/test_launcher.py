"""The launcher's gunicorn command lines: workers and threads per service (common.ops.launcher)."""

from __future__ import annotations

import pytest

from common.ops import launcher
from common.ops.launcher import THREADS, Suite, gunicorn_argv, service_concurrency


def _option(argv: list[str], name: str) -> str:
    """The value gunicorn takes for ``name``: the last one given wins."""
    return [argv[i + 1] for i, word in enumerate(argv) if word == name][-1]


def test_gunicorn_argv_defaults_to_four_threads_and_takes_others():
    argv = gunicorn_argv("seal:create_app()", 8002, 2, "xsn-seal")
    assert (_option(argv, "--workers"), _option(argv, "--threads"), argv[-1]) == ("2", "4", "seal:create_app()")
    assert THREADS == 4
    assert _option(gunicorn_argv("seal:create_app()", 8002, 3, "xsn-seal", threads=8), "--threads") == "8"


def test_a_service_takes_the_suites_settings_unless_it_or_the_environment_says_otherwise(monkeypatch):
    from identity import processes

    assert service_concurrency("identity", {}, 2, 4) == (2, 4)
    monkeypatch.setattr(processes, "GUNICORN_THREADS", 12, raising=False)
    assert service_concurrency("identity", {}, 2, 4) == (2, 12)
    env = {"XSN_IDENTITY_GUNICORN_WORKERS": "3", "XSN_IDENTITY_GUNICORN_THREADS": "6"}
    assert service_concurrency("identity", env, 2, 4) == (3, 6)  # the environment wins
    assert service_concurrency("seal", env, 2, 4) == (2, 4)  # only the service named
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
            for s in ("identity", "seal", "licenses", "messaging")} == {s: ("2", "4") for s in
                                                                      ("identity", "seal", "licenses", "messaging")}
    assert spawned["gateway"][1:3] == ["-m", "gateway.edge"]  # the edge, not gunicorn

    spawned.clear()
    Suite(var_dir=tmp_path, workers=1, threads=2, env={"XSN_SEAL_GUNICORN_THREADS": "8"}).start()
    assert (_option(spawned["identity"], "--workers"), _option(spawned["identity"], "--threads")) == ("1", "2")
    assert (_option(spawned["seal"], "--workers"), _option(spawned["seal"], "--threads")) == ("1", "8")
