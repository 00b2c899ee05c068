"""Public payment node (统一公共支付): payment notices, channels, ledger, receipts and reconciliation."""

from __future__ import annotations

from typing import Any

from flask import Flask

from common.web.app import create_app as build_app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("payment", test_config, import_name=__name__)
