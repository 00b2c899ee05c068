"""Electronic seal node (电子印章): seal registry, SM2/SM3 signing and verification (GB/T 38540),
the node CA, and the signature transparency log (:mod:`seal.log`)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

# The signature log's tables share seal.base.Base: loaded here (every import of a seal module
# runs this first) so the metadata is complete whichever module is imported first.
import seal.log.models  # noqa: F401
from common.web.app import create_app as build_app


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from common.web.console_login import SETTINGS as CONSOLE_SETTINGS
    from seal.config import SETTINGS

    return build_app("seal", test_config, import_name=__name__, init=_init,
                     settings={**SETTINGS, **CONSOLE_SETTINGS})


def _init(app: Flask, api: Api) -> None:
    from common.web.console_login import init_console_login
    from common.web.i18n import init_i18n
    from seal import api as seal_api
    from seal import pages
    from seal.console_models import ConsoleLogin, ConsoleSession
    from seal.i18n import CATALOG
    from seal.log import api as log_api
    from seal.log import pages as log_pages
    from seal.log.appends import SIGNATURE_LOG

    api.register_blueprint(seal_api.blp)
    api.register_blueprint(seal_api.sign_blp)
    api.register_blueprint(seal_api.ca_blp)
    api.register_blueprint(log_api.blp)
    init_i18n(app, CATALOG)
    init_console_login(app, ConsoleLogin, ConsoleSession)
    pages.init_app(app)
    log_pages.init_pages(app)
    # Where signatures are logged (seal.signing.SignatureLog): the database log.
    app.extensions["seal_signature_log"] = SIGNATURE_LOG
