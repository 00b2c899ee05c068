"""Database models of the gateway service (its own database)."""

from __future__ import annotations

from common.db import make_base

Base = make_base()
