"""Identity node (统一可信身份认证): OAuth 2.0 / OpenID Connect provider for citizens, organisations and staff."""

from __future__ import annotations

import importlib
import importlib.util
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from flask import Flask
from flask_smorest import Api

from common.crypto.keystore import load_kek
from common.db import get_db
from common.web.app import create_app as build_app

SETTINGS: dict[str, Any] = {
    # argon2id parameters; None = argon2-cffi's defaults (RFC 9106 low-memory profile).
    # Tests set cheap values: a default hash costs ~50-200 ms.
    "PASSWORD_HASH_TIME_COST": None,
    "PASSWORD_HASH_MEMORY_COST": None,
    "PASSWORD_HASH_PARALLELISM": None,
    "LOGIN_MAX_FAILURES": 5,  # per account, then locked for LOGIN_LOCK_MINUTES
    "LOGIN_LOCK_MINUTES": 15,
    "LOGIN_RATE_LIMIT": "20/minute",  # login POSTs per client IP
    "LOGIN_SESSION_HOURS": 12,
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "TOTP_ISSUER": "西安统一身份认证",
    # RealNameVerifier: "embedded" (local demo register) or "http" (population-register service)
    "REALNAME_VERIFIER": "embedded",
    "REALNAME_URL": None,
    "REALNAME_API_KEY": None,
    "REALNAME_TIMEOUT": 3.0,
    "REALNAME_RATE_LIMIT": "5/hour",  # verification attempts per person
    "PASSWORD_RESET_MINUTES": 30,
    "PASSWORD_RESET_RATE_LIMIT": "5/hour",  # reset requests per client IP
    # The embedded notifier's outbox is readable at /dev/outbox (never in production).
    "DEMO_OUTBOX_PAGE": True,
    # Set by the federation part: the login page offers the provincial login when set.
    "FEDERATION_UPSTREAM_ISSUER": None,
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = dict(SETTINGS)
    if importlib.util.find_spec("identity.oauth") is not None:
        # The OAuth part declares its own settings next to its code.
        settings.update(getattr(importlib.import_module("identity.oauth"), "SETTINGS", {}))
    return build_app("identity", test_config, import_name=__name__, init=_init, settings=settings)


def password_hasher(config: dict[str, Any]) -> PasswordHasher:
    params = {name: int(config[key]) for name, key in (("time_cost", "PASSWORD_HASH_TIME_COST"),
                                                       ("memory_cost", "PASSWORD_HASH_MEMORY_COST"),
                                                       ("parallelism", "PASSWORD_HASH_PARALLELISM"))
              if config.get(key) not in (None, "")}
    return PasswordHasher(**params)


def _init(app: Flask, api: Api) -> None:
    from common.web.i18n import init_i18n
    from identity import api as identity_api
    from identity import pages
    from identity.accounts import AccountPolicy, install_policy
    from identity.i18n import CATALOG
    from identity.pii import PiiCipher
    from identity.realname import make_verifier

    policy = AccountPolicy(
        pii=PiiCipher.from_kek(load_kek(app.config)),
        hasher=password_hasher(app.config),
        max_failures=int(app.config["LOGIN_MAX_FAILURES"]),
        lock_window=timedelta(minutes=float(app.config["LOGIN_LOCK_MINUTES"])),
        totp_issuer=app.config["TOTP_ISSUER"],
    )
    install_policy(get_db(app).sessionmaker, policy)
    app.extensions["identity_realname"] = make_verifier(app.config)
    init_i18n(app, CATALOG)
    pages.init_app(app)
    api.register_blueprint(identity_api.blp)
    if importlib.util.find_spec("identity.oauth") is not None:
        importlib.import_module("identity.oauth").init_oauth(app, api)
