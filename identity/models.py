"""Database models of the identity service (its own database)."""

from __future__ import annotations

from common.db import make_base

Base = make_base()
