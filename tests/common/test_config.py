"""common.config.layered: the one configuration layering (create_app and the gateway's edge)."""

import os

from flask import Config

from common import config as cfg


def test_layers_apply_in_order_and_the_environment_reads_as_flask_does():
    environ = {"XSN_LOG_LEVEL": "DEBUG", "XSN_GATEWAY_WORKERS": "4", "XSN_LIMITS__login__rate": "3",
               "XSN_NAME": "not json", "OTHER_X": "1"}
    config = cfg.layered("gateway", {"GATEWAY_WORKERS": 1, "LIMITS": {"login": {"rate": 1, "burst": 5}}},
                         {"LOG_LEVEL": "WARNING"}, environ=environ)
    assert config["LOG_LEVEL"] == "WARNING"  # overrides win over the environment
    assert config["GATEWAY_WORKERS"] == 4  # JSON-parsed, over the settings
    assert config["LIMITS"] == {"login": {"rate": 3, "burst": 5}}  # "__" reaches into the dict
    assert config["NAME"] == "not json" and "X" not in config
    # Flask's own reading of the same environment gives the same values.
    flask_config = Config(".")
    flask_config.from_mapping(LIMITS={"login": {"rate": 1, "burst": 5}})
    saved = dict(os.environ)
    try:
        os.environ.update(environ)
        flask_config.from_prefixed_env(cfg.ENV_PREFIX)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for key in ("GATEWAY_WORKERS", "LIMITS", "NAME"):
        assert flask_config[key] == config[key]


def test_per_service_settings_win_over_the_shared_ones():
    environ = {"XSN_DATABASE_URL": "sqlite:///shared.db", "XSN_SEAL_DATABASE_URL": "sqlite:///seal.db",
               "XSN_KEK": "shared", "XSN_SEAL_URL": "http://seal.internal:9/"}
    seal = cfg.layered("seal", environ=environ)
    other = cfg.layered("identity", environ=environ)
    assert seal["DATABASE_URL"] == "sqlite:///seal.db" and other["DATABASE_URL"] == "sqlite:///shared.db"
    assert seal["KEK"] == other["KEK"] == "shared"
    assert other["SERVICE_URLS"]["seal"] == "http://seal.internal:9"
