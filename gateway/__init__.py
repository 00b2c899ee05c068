"""API gateway (统一接入网关): the one front door that routes ``/<service>/...`` to each node."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from common.web.app import create_app as build_app

SETTINGS: dict[str, Any] = {
    "GATEWAY_UPSTREAM_TIMEOUT": 30.0,  # seconds to wait for a service's answer (504 after)
}


def _init(app: Flask, api: Api) -> None:
    from gateway.audit.api import init_audit
    from gateway.proxy import init_proxy

    init_audit(app, api)
    init_proxy(app)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from common.web.console_login import SETTINGS as CONSOLE_SETTINGS
    from gateway.audit.config import SETTINGS as AUDIT_SETTINGS

    settings = {**SETTINGS, **AUDIT_SETTINGS, **CONSOLE_SETTINGS}
    return build_app("gateway", test_config, import_name=__name__, init=_init, settings=settings)
