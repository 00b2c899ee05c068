"""Electronic seal node (电子印章): seal registry, SM2/SM3 signing and verification (GB/T 38540),
the node CA, and the signature transparency log."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from flask import Flask
from flask_smorest import Api

from common.web.app import create_app as build_app

SETTINGS: dict[str, Any] = {
    # The document itself may be posted for signing/verification instead of its digest.
    "SEAL_MAX_DOCUMENT_BYTES": 512 * 1024,
    # A font with Chinese glyphs for generated seal pictures; empty = look for one (fontconfig,
    # Debian's CJK font packages). A path that is missing or has no Chinese glyphs = shape-only.
    "SEAL_FONT_PATH": "",
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from common.web.console_login import SETTINGS as CONSOLE_SETTINGS

    settings = {**SETTINGS, **CONSOLE_SETTINGS}
    if importlib.util.find_spec("seal.log_api") is not None:
        settings.update(getattr(importlib.import_module("seal.log_api"), "SETTINGS", {}))
    return build_app("seal", test_config, import_name=__name__, init=_init, settings=settings)


def _init(app: Flask, api: Api) -> None:
    from common.web.console_login import init_console_login
    from common.web.i18n import init_i18n
    from seal import api as seal_api
    from seal import pages
    from seal.console_models import ConsoleLogin, ConsoleSession
    from seal.i18n import CATALOG

    api.register_blueprint(seal_api.blp)
    api.register_blueprint(seal_api.sign_blp)
    api.register_blueprint(seal_api.ca_blp)
    init_i18n(app, CATALOG)
    init_console_login(app, ConsoleLogin, ConsoleSession)
    pages.init_app(app)
    if importlib.util.find_spec("seal.log") is not None:
        app.extensions["seal_log_append"] = importlib.import_module("seal.log").append_event
    if importlib.util.find_spec("seal.log_api") is not None:
        importlib.import_module("seal.log_api").init_log(app, api)
