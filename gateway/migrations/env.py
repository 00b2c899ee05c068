"""Alembic environment of the gateway service."""

from common.migrate import run_env
from gateway.models import Base

run_env(Base.metadata)
