"""Alembic environment of the licenses service."""

from common.ops.migrate import run_env
from licenses.models import Base

run_env(Base.metadata)
