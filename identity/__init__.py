"""Identity node (统一可信身份认证): OAuth 2.0 / OpenID Connect provider for citizens, organisations and staff."""

from __future__ import annotations

from typing import Any

from flask import Flask

from common.app import create_app as build_app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("identity", test_config, import_name=__name__)
