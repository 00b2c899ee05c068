"""Every service's migrations go up from empty and back down again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from common.ops.migrate import MIGRATING_SERVICES, downgrade, upgrade


@pytest.mark.parametrize("service", MIGRATING_SERVICES)
def test_upgrade_downgrade_upgrade(service, tmp_path):
    url = f"sqlite:///{tmp_path / service}.db"
    upgrade(service, url)
    tables = set(inspect(create_engine(url)).get_table_names())
    downgrade(service, url, "base")
    assert set(inspect(create_engine(url)).get_table_names()) <= {"alembic_version"}
    upgrade(service, url)
    assert set(inspect(create_engine(url)).get_table_names()) == tables


@pytest.mark.parametrize("service", MIGRATING_SERVICES)
def test_migrations_match_models(service, databases):
    """The migrated schema has every table the models declare (no drift)."""
    import importlib

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    metadata = importlib.import_module(f"{service}.models").Base.metadata
    engine = create_engine(databases.fresh(service))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []
