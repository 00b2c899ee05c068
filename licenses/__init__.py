"""Electronic licences node (电子证照): licence catalogue, issuance, holder-authorised use and verification."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from common.web.app import create_app as build_app
from common.web.context import request_globals
from licenses.config import SETTINGS


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from common.web.console_login import SETTINGS as CONSOLE_SETTINGS

    return build_app("licenses", test_config, import_name=__name__, init=_init,
                     settings={**SETTINGS, **CONSOLE_SETTINGS})


def _init(app: Flask, api: Api) -> None:
    from common.web.console_login import init_console_login
    from licenses import api as licenses_api
    from licenses import holder_api, holder_pages, pages
    from licenses.console_models import ConsoleLogin, ConsoleSession
    from licenses.peers import init_peers

    init_peers(app)
    api.register_blueprint(licenses_api.types_blp)
    api.register_blueprint(licenses_api.issue_blp)
    api.register_blueprint(licenses_api.bulk_blp)
    api.register_blueprint(holder_api.holder_blp)
    api.register_blueprint(holder_api.verify_blp)
    pages.init_app(app)
    init_console_login(app, ConsoleLogin, ConsoleSession)
    holder_pages.init_app(app)

    @app.after_request
    def _deliver_after_response(response):
        # A change that wrote to the notification outbox is delivered once the response has
        # been sent (the caller does not wait for the hub); the sweeper in tasks.py retries.
        if request_globals().get("licenses_deliver") and response.status_code < 400:
            response.call_on_close(lambda: deliver_notifications(app))
        return response


def deliver_notifications(app: Flask) -> int:
    from common.db import get_db
    from licenses.notifier import deliver_pending

    with app.app_context(), get_db(app).session() as session:
        return deliver_pending(session, app.extensions["licenses"]["notifier"])
