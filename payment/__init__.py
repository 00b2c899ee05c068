"""Public payment node (统一公共支付): payment notices, channels, ledger, receipts and reconciliation."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask_smorest import Api

from common.web.app import create_app as build_app
from payment.config import SETTINGS


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("payment", test_config, import_name=__name__, init=_init, settings=SETTINGS)


def _init(app: Flask, api: Api) -> None:
    from common.http import ServiceClient
    from common.web.i18n import init_i18n
    from payment import api as payment_api
    from payment import finance_api, pages
    from payment.channels.institution import InstitutionClient
    from payment.channels.registry import build_channels
    from payment.i18n import CATALOG
    from payment.peers import init_peers

    api.register_blueprint(payment_api.notices_blp)
    api.register_blueprint(payment_api.ledger_blp)
    api.register_blueprint(payment_api.channels_blp)
    api.register_blueprint(finance_api.recon_blp)
    api.register_blueprint(finance_api.receipts_blp)
    app.register_blueprint(pages.bp)
    init_i18n(app, CATALOG)
    embedded = None
    if app.config.get("ENV") != "production" and not app.config.get("PAYMENT_BANK_SECRET"):
        from payment.channel_sim.keys import institution_keys

        embedded = institution_keys(app.config["VAR_DIR"])  # the simulator's public halves (embedded run)
    app.extensions["payment_channels"] = build_channels(app.config, embedded_keys=embedded)
    init_peers(app)

    @app.after_request
    def _deliver_after_response(response):
        # Messages a request wrote to the outbox go once the response is sent (the caller does
        # not wait for the hub); the sweeper task retries what this could not send.
        if response.status_code < 400 and g.get("payment_outbox"):
            response.call_on_close(lambda: deliver_notifications(app))
        return response
    app.extensions["payment_institution"] = InstitutionClient(
        ServiceClient(app.config["PAYMENT_CHANNEL_SIM_URL"], timeout=float(app.config["HTTP_TIMEOUT"])))


def deliver_notifications(app: Flask) -> int:
    from common.db import get_db
    from common.peers.outbox import deliver_pending
    from payment.models import Notification

    with app.app_context(), get_db(app).session() as session:
        return deliver_pending(session, Notification, app.extensions["payment_notifier"])
