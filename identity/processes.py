"""What the identity node adds to ``xsn run``: the demo government app, and what to try."""

from __future__ import annotations

from common.ops.launcher import gunicorn_argv
from identity.demo_app import DEFAULT_PORT


def processes(suite) -> dict[str, list[str]]:
    if not suite.demo_apps:
        return {}
    # One worker: the demo keeps its tokens in process memory.
    return {"demo-app": gunicorn_argv("identity.demo_app:create_app()", DEFAULT_PORT, 1, "xsn-demo-app")}


def summary(suite) -> list[str]:
    from identity.seed import DEMO_PEOPLE

    lines = []
    if suite.demo_apps:
        lines += ["", f"Demo government app (log in through the identity node): http://127.0.0.1:{DEFAULT_PORT}"]
    lines += ["Demo accounts (log in with the ID number or mobile; password for all: "
              f"{DEMO_PEOPLE[0]['password']}):"]
    lines += [f"  {p['name']}  {p['id_number']}  {p['mobile']}  L{p['level']}  {p['note']}" for p in DEMO_PEOPLE]
    lines += [f"Service client secrets (embedded only): {suite.var_dir / 'clients.json'}"]
    return lines
