"""Alembic per service: ``<service>/migrations`` holds each service's own history.

Tests build their schemas through these functions, so every migration is exercised.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
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
