"""Message hub (统一消息): templates, SMS / e-mail / inbox / webhooks, preferences and delivery status."""

from __future__ import annotations

from typing import Any

from flask import Flask

from common.web.app import create_app as build_app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("messaging", test_config, import_name=__name__)
