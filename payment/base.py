"""The declarative base every payment table is declared on (its own database)."""

from __future__ import annotations

from common.db import make_base

Base = make_base()
