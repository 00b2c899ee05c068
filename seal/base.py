"""The declarative base every table of the seal database is declared on (one metadata)."""

from __future__ import annotations

from common.db import make_base

Base = make_base()
