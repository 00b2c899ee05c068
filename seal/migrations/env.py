"""Alembic environment of the seal service."""

from common.ops.migrate import run_env
from seal.models import Base

run_env(Base.metadata)
