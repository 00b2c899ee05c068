"""Alembic environment of the identity service."""

from common.ops.migrate import run_env
from identity.models import Base

run_env(Base.metadata)
