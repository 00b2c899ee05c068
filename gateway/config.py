"""The configuration the gateway's processes outside Flask read (the edge, the audit writer).

The same layers as every app's ``create_app``: defaults -> the gateway's and the audit log's
SETTINGS -> ``XSN_*`` environment -> overrides.
"""

from __future__ import annotations

from typing import Any

from flask import Config

from common import config as cfg


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from gateway import SETTINGS
    from gateway.audit.config import SETTINGS as AUDIT_SETTINGS

    config = Config(".")
    config.from_mapping(cfg.defaults("gateway"))
    config.from_mapping({**SETTINGS, **AUDIT_SETTINGS})
    config.from_prefixed_env(cfg.ENV_PREFIX)
    config.from_mapping(overrides or {})
    # The per-service settings resolve as in common.web.app.create_app: the audit writer must
    # use the same database (XSN_GATEWAY_DATABASE_URL) and KEK as the admin app.
    for key in ("DATABASE_URL", "SECRET_KEY", "KEK"):
        config[key] = cfg.service_setting(config, "gateway", key)
    config["SERVICE_URLS"] = cfg.service_urls(config)
    return dict(config)
