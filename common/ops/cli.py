"""The ``xsn`` command: run the suite, migrate, seed, export OpenAPI documents.

Services add their own command groups in ``<service>/cli.py`` (a click group named ``cli``).
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
from pathlib import Path

import click

from common.config import DEFAULT_PORTS, SERVICES, service_modules, var_dir
from common.ops.migrate import MIGRATING_SERVICES


def load_app(service: str):
    return importlib.import_module(service).create_app()


@click.group()
def main() -> None:
    """Xi'an shared business-support nodes (西安市共性业务支撑节点)."""


@main.command()
@click.argument("services", nargs=-1, type=click.Choice(MIGRATING_SERVICES))
def migrate(services: tuple[str, ...]) -> None:
    """Upgrade each service's database to the newest schema (all by default)."""
    from common.ops.migrate import upgrade

    for service in services or MIGRATING_SERVICES:
        app = load_app(service)
        upgrade(service, app.config["DATABASE_URL"])
        click.echo(f"migrated {service}")


@main.command()
def seed() -> None:
    """Load the demo data of every service that has any (idempotent)."""
    for service, module in service_modules("seed"):
        app = load_app(service)
        with app.app_context():
            module.seed(app)
        click.echo(f"seeded {service}")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/openapi"), show_default=True)
def openapi(out: Path) -> None:
    """Write every service's OpenAPI document, generated from the code."""
    out.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        app = load_app(service)
        spec = app.extensions["xsn_api"].spec.to_dict()
        (out / f"{service}.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        click.echo(f"wrote {out / (service + '.json')}")


@main.command()
@click.option("--workers", default=2, show_default=True,
              help="gunicorn workers per service (one service: XSN_<SERVICE>_GUNICORN_WORKERS)")
@click.option("--threads", default=4, show_default=True,
              help="threads per gunicorn worker (one service: XSN_<SERVICE>_GUNICORN_THREADS)")
def run(workers: int, threads: int) -> None:
    """Start every service, the worker and the simulators; Ctrl-C stops them all."""
    from common.ops.launcher import Suite, summaries

    suite = Suite(var_dir=var_dir(), workers=workers, threads=threads, demo_apps=True)
    exit_code = 0
    try:
        suite.check_ports_free()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    suite.prepare()
    suite.start()

    def _stop(_signum, _frame):
        raise KeyboardInterrupt

    # Also SIGINT explicitly: a shell starting us in the background would have it ignored.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        suite.wait_ready()
        click.echo("\nThe suite is up (Ctrl-C stops every process):")
        for service in ("gateway", *[s for s in SERVICES if s != "gateway"]):
            click.echo(f"  {service:<10} http://127.0.0.1:{DEFAULT_PORTS[service]}   "
                       f"docs: http://127.0.0.1:{DEFAULT_PORTS[service]}/docs")
        click.echo("  through the gateway: http://127.0.0.1:8000/<service>/...  "
                   "(e.g. http://127.0.0.1:8000/identity/info)")
        for line in summaries(suite):
            click.echo(line)
        while True:
            dead = [name for name, proc in suite.processes.items() if proc.poll() is not None]
            if dead:
                click.echo(f"process exited: {', '.join(dead)}; stopping the suite", err=True)
                exit_code = 1
                break
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        suite.stop()
    sys.exit(exit_code)


def _add_service_commands() -> None:
    """``xsn <service> ...`` from each ``<service>/cli.py``'s ``cli`` group, plus the top-level
    groups it lists in ``TOP_LEVEL`` (e.g. ``xsn ledger check``, ``xsn audit verify``): commands
    named after what an operator works on rather than which node holds it."""
    for service, module in service_modules("cli"):
        main.add_command(module.cli, service)
        for group in getattr(module, "TOP_LEVEL", ()):
            main.add_command(group)


_add_service_commands()

if __name__ == "__main__":
    main()
