"""Message hub (统一消息): templates, SMS / e-mail / inbox / webhooks, preferences and delivery status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_smorest import Api

from common.web.app import create_app as build_app

SETTINGS: dict[str, Any] = {
    # identity: people's channels from identity's admin API; memory: an empty in-process directory.
    "MESSAGING_DIRECTORY": "identity",
    "MESSAGING_IDENTITY_CLIENT_ID": "xsn-messaging",
    # XSN_MESSAGING_IDENTITY_CLIENT_SECRET, or in the embedded setup from var/clients.json (identity's
    # seed); production without it looks nobody up (503 directory_unavailable: fails closed).
    "MESSAGING_IDENTITY_CLIENT_SECRET": None,
    # Asked of identity for the directory's token. If identity refuses it (invalid_scope), the hub
    # asks for identity:people:read alone and warns: contacts come masked and are dropped.
    "MESSAGING_IDENTITY_SCOPE": "identity:people:read phone:full email:full",
    "MESSAGING_DIRECTORY_CONCURRENCY": 8,  # identity lookups in flight at once for one bulk send
    "MESSAGING_DIRECTORY_BATCH": 500,  # subjects per identity lookup; at most identity's PEOPLE_LOOKUP_MAX
    # celery: a worker delivers; inline: the request delivers at once (tests without a worker).
    "MESSAGING_DISPATCH": "celery",
    "MESSAGING_MAX_RECIPIENTS": 10_000,
    "MESSAGING_BATCH_SIZE": 100,
    "MESSAGING_APP_RATE_LIMIT": "600/minute",
    "MESSAGING_RECIPIENT_RATE_LIMIT": "30/hour",
    "MESSAGING_DIGEST_WINDOW": 600,  # seconds low-priority messages with a digest key wait for company
    "MESSAGING_RETRY_SCHEDULE": "5,30,120,600,1800",
    "MESSAGING_WEBHOOK_RETRY_SCHEDULE": "0,5,300,1800,7200,18000,36000,36000",
    "MESSAGING_STUCK_AFTER": 120,
    "MESSAGING_WEBHOOK_DISABLE_AFTER": 100,
    "MESSAGING_WEBHOOK_ALLOW_PRIVATE": None,  # None: allowed embedded, refused in production
    "MESSAGING_RELAY_INTERVAL": 1.0,
    "MESSAGING_SWEEP_INTERVAL": 30.0,
    "MESSAGING_SMS_URL": None,  # None: the carrier simulator on MESSAGING_SMS_SIMULATOR_PORT
    "MESSAGING_SMS_SIMULATOR_PORT": 8010,
    "MESSAGING_SMS_ACCESS_KEY_ID": "xsn-embedded",
    "MESSAGING_SMS_ACCESS_KEY_SECRET": None,  # embedded: generated under var/
    "MESSAGING_SMS_RECEIPT_TOKEN": None,  # embedded: generated under var/
    "MESSAGING_SMTP_HOST": "127.0.0.1",
    "MESSAGING_SMTP_PORT": 8025,
    "MESSAGING_SMTP_STARTTLS": False,
    "MESSAGING_SMTP_USERNAME": None,
    "MESSAGING_SMTP_PASSWORD": None,
    "MESSAGING_SMTP_SENDER": "西安统一消息 <noreply@xsn.local>",
    "MESSAGING_INBOX_CLIENT_ID": "xsn-messaging-inbox",
}


@dataclass
class Hub:
    """The parts the views use, built once per app from its configuration."""

    directory: Any
    limits: Any
    kick: Callable[[], None]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from common.web.console_login import SETTINGS as CONSOLE_SETTINGS

    return build_app("messaging", test_config, import_name=__name__, init=_init,
                     settings={**SETTINGS, **CONSOLE_SETTINGS})


def _init(app: Flask, api: Api) -> None:
    from common.db import get_db
    from common.web.console_login import init_console_login
    from common.web.i18n import init_i18n
    from messaging import api as hub_api
    from messaging import delivery, dispatch, pages, wiring
    from messaging.console_models import ConsoleLogin, ConsoleSession
    from messaging.i18n import CATALOG

    for blueprint in (hub_api.blp, hub_api.inbox_blp, hub_api.hooks_blp):
        api.register_blueprint(blueprint)
    init_i18n(app, CATALOG)
    init_console_login(app, ConsoleLogin, ConsoleSession)
    pages.init_app(app)

    if app.config["MESSAGING_DISPATCH"] == "inline":
        def kick() -> None:
            inline = dispatch.InlineDispatcher(get_db(app).sessionmaker, app.config)
            with get_db(app).session() as session:
                for _ in range(5):  # a fallback queues the next channel at once
                    if not delivery.relay(session, inline, wiring.delivery_settings(app.config)):
                        break
    else:
        from common.ops.tasks import celery_app

        kick = dispatch.Kicker(celery_app.send_task)
    app.extensions["messaging"] = Hub(directory=wiring.directory(app.config),
                                      limits=wiring.send_limits(app.config), kick=kick)
