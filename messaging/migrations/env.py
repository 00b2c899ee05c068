"""Alembic environment of the messaging service."""

from common.ops.migrate import run_env
from messaging.models import Base

run_env(Base.metadata)
