"""Alembic per service: ``<service>/migrations`` holds each service's own history.

Tests build their schemas through these functions, so every migration is exercised.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool

from common.db import make_engine

MIGRATING_SERVICES = ("identity", "licenses", "seal", "payment", "messaging", "gateway")


def alembic_config(service: str, url: str) -> Config:
    package = importlib.import_module(service)
    script_location = Path(package.__file__).parent / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # Percent signs in URLs (encoded passwords) must survive ConfigParser interpolation.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def downgrade(service: str, url: str, revision: str) -> None:
    command.downgrade(alembic_config(service, url), revision)


@cache
def _revisions(service: str) -> tuple[frozenset[str], frozenset[str]]:
    """(the heads of ``service``'s migration history, every revision in it), read once."""
    script = ScriptDirectory.from_config(alembic_config(service, "sqlite://"))
    return frozenset(script.get_heads()), frozenset(rev.revision for rev in script.walk_revisions())


def schema_state(service: str, database_revisions: set[str]) -> str:
    """How a database's ``alembic_version`` rows compare with the code's migration heads.

    ``"current"``: at the heads. ``"behind"``: unmigrated, or at a revision the code knows
    but has moved past (this code needs ``xsn migrate``). ``"ahead"``: at a revision this
    code does not know, i.e. a newer release migrated it; the old release keeps serving
    during a rolling deployment (migrations are additive), so that is not a failure.
    """
    heads, known = _revisions(service)
    if set(database_revisions) == heads:
        return "current"
    if not database_revisions or set(database_revisions) <= known:
        return "behind"
    return "ahead"


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py`` (online mode only: we always have a DB)."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER via batch mode
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
