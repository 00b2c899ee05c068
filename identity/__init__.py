"""Identity node (统一可信身份认证): OAuth 2.0 / OpenID Connect provider for citizens, organisations and staff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from argon2 import PasswordHasher
from flask import Flask
from flask_smorest import Api

# Every table shares identity.base.Base: loading both table modules here (every import of an
# identity module runs this first) keeps the metadata (migrations, schema checks) complete
# whichever module is imported first, without the two modules importing each other.
import identity.models  # noqa: F401
import identity.oauth.models  # noqa: F401
from common.crypto.keystore import load_kek
from common.db import get_db
from common.web.app import create_app as build_app
from identity.config import SETTINGS


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    return build_app("identity", test_config, import_name=__name__, init=_init, settings=dict(SETTINGS))


def password_hasher(config: dict[str, Any]) -> PasswordHasher:
    params = {name: int(config[key]) for name, key in (("time_cost", "PASSWORD_HASH_TIME_COST"),
                                                       ("memory_cost", "PASSWORD_HASH_MEMORY_COST"),
                                                       ("parallelism", "PASSWORD_HASH_PARALLELISM"))
              if config.get(key) not in (None, "")}
    return PasswordHasher(**params)


def _init(app: Flask, api: Api) -> None:
    from common.crypto.pii import PiiCipher
    from common.web.i18n import init_i18n
    from identity import api as identity_api
    from identity import notify, pages
    from identity.accounts import AccountPolicy, install_policy
    from identity.federation import pages as federation
    from identity.i18n import CATALOG
    from identity.oauth.server import init_oauth
    from identity.realname import make_verifier

    policy = AccountPolicy(
        pii=PiiCipher.from_kek(load_kek(app.config), "identity"),
        hasher=password_hasher(app.config),
        max_failures=int(app.config["LOGIN_MAX_FAILURES"]),
        lock_window=timedelta(minutes=float(app.config["LOGIN_LOCK_MINUTES"])),
        totp_issuer=app.config["TOTP_ISSUER"],
    )
    install_policy(get_db(app).sessionmaker, policy)
    app.extensions["identity_realname"] = make_verifier(app.config)
    app.extensions["identity_notifier"] = notify.make_notifier(app.config)
    app.extensions["identity_relay"] = _relay(app)
    init_i18n(app, CATALOG)
    pages.init_app(app)
    api.register_blueprint(identity_api.blp)
    init_oauth(app, api)
    federation.init_app(app)  # after init_oauth: the federation pages resume its flows


def deliver_notifications(app: Flask) -> int:
    """Send identity's pending notifications through the hub (the worker's task and sweeper)."""
    from identity.notify import deliver_pending

    with app.app_context(), get_db(app).session() as session:
        return deliver_pending(session, app.extensions["identity_notifier"])


def _relay(app: Flask):
    """What a request calls once its reset is committed: with the hub, ask the worker for a
    delivery run (identity.tasks), never call the hub from the request (it checks tokens with
    identity: a request waiting on it could wait on itself); in memory, deliver at once."""
    if app.config["IDENTITY_NOTIFIER"] == "memory":
        return lambda: deliver_notifications(app)

    def ask_the_worker() -> None:
        from common.ops.tasks import celery_app

        try:
            # retry=False: a broker that is down must not hold the request; the sweeper sends it.
            celery_app.send_task("identity.deliver_notifications", retry=False, expires=60)
        except Exception as exc:  # noqa: BLE001 - kombu's errors vary by transport; the row is safe
            structlog.get_logger("xsn.identity").warning("identity_relay_not_queued", error=type(exc).__name__)

    return ask_the_worker
