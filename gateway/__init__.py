"""API gateway (统一接入网关): the one front door that routes ``/<service>/...`` to each node.

The request path is the asyncio edge in ``gateway.edge`` (started by ``python -m gateway.edge``);
this Flask app serves the gateway's own API documents and admin/auditor API on an internal
port, behind the edge under ``/gateway``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from common.web.app import create_app as build_app
from gateway.config import SETTINGS


def _init(app: Flask, api: Api) -> None:
    from gateway.audit.pages import init_audit

    init_audit(app, api)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from common.web.console_login import SETTINGS as CONSOLE_SETTINGS
    from gateway.audit.config import SETTINGS as AUDIT_SETTINGS

    settings = {**SETTINGS, **AUDIT_SETTINGS, **CONSOLE_SETTINGS}
    return build_app("gateway", test_config, import_name=__name__, init=_init, settings=settings)
