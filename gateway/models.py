"""Database models of the gateway service (its own database)."""

from __future__ import annotations

import importlib

from common.db import make_base

Base = make_base()

importlib.import_module("gateway.audit.models")  # the audit log's tables, on this Base
