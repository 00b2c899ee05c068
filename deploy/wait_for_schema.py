"""Wait until services' database schemas are at the code's migration head (a Kubernetes init container).

    python /app/deploy/wait_for_schema.py identity [seal ...] [--timeout 600]

The migrate Job upgrades every database once per release; each Deployment's pods wait here
until their own schema is current, so no pod serves (or migrates concurrently) against a
schema behind its code. The database URL is read as the service reads it:
``XSN_<SERVICE>_DATABASE_URL``, else ``XSN_DATABASE_URL``. Exit 0 when current, 1 on timeout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.exc import SQLAlchemyError

from common.db import make_engine
from common.ops.migrate import alembic_config


def database_url(service: str, environ: dict[str, str]) -> str:
    url = environ.get(f"XSN_{service.upper()}_DATABASE_URL") or environ.get("XSN_DATABASE_URL")
    if not url:
        raise SystemExit(f"XSN_{service.upper()}_DATABASE_URL is not set")
    return url


def schema_is_current(service: str, url: str) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(service, url)).get_heads())
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    return current == heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="+")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--interval", type=float, default=3.0)
    args = parser.parse_args(argv)
    pending = {service: database_url(service, dict(os.environ)) for service in args.services}
    deadline = time.monotonic() + args.timeout
    while True:
        states = {}
        for service, url in list(pending.items()):
            try:
                if schema_is_current(service, url):
                    print(f"{service}: schema at head", flush=True)
                    del pending[service]
                    continue
                states[service] = "behind the code"
            except SQLAlchemyError as exc:
                states[service] = f"unreachable ({type(exc).__name__})"
        if not pending:
            return 0
        summary = ", ".join(f"{service} {state}" for service, state in states.items())
        if time.monotonic() >= deadline:
            print(f"schema not ready after {args.timeout:.0f}s: {summary}", file=sys.stderr, flush=True)
            return 1
        print(f"waiting for the migrate job: {summary}", flush=True)
        time.sleep(args.interval)

if __name__ == "__main__":
    sys.exit(main())
