"""Alembic environment of the gateway service."""

from common.ops.migrate import run_env
from gateway.models import Base

run_env(Base.metadata)
