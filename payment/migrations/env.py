"""Alembic environment of the payment service."""

from common.ops.migrate import run_env
from payment.models import Base

run_env(Base.metadata)
