"""Layered configuration: defaults -> ``XSN_*`` environment -> test override.

The switch between the embedded run (SQLite, in-memory limits, SQLite-backed broker) and
production (PostgreSQL, Redis) is configuration only.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

SERVICES = ("identity", "licenses", "seal", "payment", "messaging", "gateway")

# Embedded ports (ARCHITECTURE.md "Suggested ports").
DEFAULT_PORTS = {
    "gateway": 8000,
    "identity": 8001,
    "licenses": 8002,
    "seal": 8003,
    "payment": 8004,
    "messaging": 8005,
}

ENV_PREFIX = "XSN"
# Routes called on a timer, not by people: probes (the edge's, a kubelet's) and scrapes. Their
# access lines are DEBUG (common.web.observability); a service adds its polled routes.
PROBE_ROUTES = ("/livez", "/readyz", "/metrics")


def service_module_names(part: str) -> list[str]:
    """``<service>.<part>`` for each service that has such a module, found without importing it."""
    return [f"{service}.{part}" for service in SERVICES if importlib.util.find_spec(f"{service}.{part}") is not None]


def service_modules(part: str) -> Iterator[tuple[str, ModuleType]]:
    """``(service, module)`` for each service that has a ``<service>.<part>`` module
    (``seed``, ``cli``, ``processes``): how a service plugs into the CLI and the launcher."""
    for name in service_module_names(part):
        yield name.split(".", 1)[0], importlib.import_module(name)


def var_dir() -> Path:
    """Where the embedded setup keeps its SQLite files, keys and run state."""
    return Path(os.environ.get("XSN_VAR_DIR", "var")).resolve()


def defaults(service: str) -> dict[str, Any]:
    var = var_dir()
    return {
        "SERVICE_NAME": service,
        "ENV": "embedded",  # "production" turns on fail-closed checks (e.g. XSN_KEK required)
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / (service + '.db')}",
        "BROKER_URL": f"sqla+sqlite:///{var / 'celery-broker.db'}",
        "REDIS_URL": None,  # rate limits in memory when unset
        "KEK": None,  # hex SM4 key-encryption key; generated under var/ in the embedded setup
        "SECRET_KEY": None,  # session cookies; generated under var/ in the embedded setup
        "LOG_LEVEL": "INFO",
        "ACCESS_LOG_DEBUG_ROUTES": list(PROBE_ROUTES),  # route rules whose access lines are DEBUG, not INFO
        # Access tokens: None means derived (issuer through the gateway, audience xsn:<service>,
        # JWKS from identity's internal URL); see common.web.auth.resolved_settings.
        "OAUTH_ISSUER": None,
        "OAUTH_AUDIENCE": None,
        "OAUTH_JWKS_URL": None,
        "RATELIMIT_ENABLED": True,
        # Behind the gateway every service shares one host: each needs its own cookie name
        # (and its own secret) or one service would decode and re-send another's session.
        "SESSION_COOKIE_NAME": f"xsn_{service}_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_CHECK_DEFAULT": False,  # CSRF is enforced on page blueprints only (common.web.pages)
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "JSON_SORT_KEYS": False,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{DEFAULT_PORTS['gateway']}",
        "SERVICE_URLS": {s: f"http://127.0.0.1:{p}" for s, p in DEFAULT_PORTS.items()},
        "HTTP_TIMEOUT": 5.0,
        "HTTP_RETRIES": 2,
        "HTTP_RETRY_AFTER_MAX": 2.0,  # seconds a peer's Retry-After may hold a worker (common.http)
        "PROXY_HOPS": 1,  # the gateway is the one trusted proxy in front of each service
        # flask-smorest / OpenAPI
        "API_TITLE": f"xsn {service}",
        "API_VERSION": "0.1.0",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        # Swagger UI's assets from each service itself (common.web.page_headers), relative to the
        # page (``<prefix>/docs``): they resolve under the gateway's prefix and without one.
        "OPENAPI_SWAGGER_UI_URL": "docs/assets/",
    }


def layered(service: str, settings: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
            environ: dict[str, str] | None = None) -> dict[str, Any]:
    """One service's configuration: defaults -> its ``settings`` -> ``XSN_*`` -> ``overrides``.

    The one layering every process uses: ``create_app`` for the Flask apps, and the processes
    outside Flask (the gateway's edge and audit writer). The environment layer reads as
    Flask's ``Config.from_prefixed_env`` does (a value that parses as JSON is taken as such,
    ``__`` reaches into a nested dict), so moving a setting between the two changes nothing.
    The per-service keys (``XSN_<SERVICE>_DATABASE_URL``, ``_SECRET_KEY``, ``_KEK``) are resolved.
    """
    config: dict[str, Any] = {**defaults(service), **(settings or {})}
    env = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}_"
    for key in sorted(env):
        if not key.startswith(prefix):
            continue
        value: Any = env[key]
        with contextlib.suppress(ValueError):  # not JSON: the string itself
            value = json.loads(value)
        *parents, leaf = key[len(prefix):].split("__")
        target = config
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    config.update(overrides or {})
    for key in ("DATABASE_URL", "SECRET_KEY", "KEK"):
        config[key] = service_setting(config, service, key)
    config["SERVICE_URLS"] = service_urls(config)
    return config


def service_setting(config: dict[str, Any], service: str, key: str) -> Any:
    """``XSN_<SERVICE>_<KEY>`` wins over ``XSN_<KEY>`` (e.g. one database per service)."""
    specific = config.get(f"{service.upper()}_{key}")
    return specific if specific not in (None, "") else config.get(key)


def service_urls(config: dict[str, Any]) -> dict[str, str]:
    """Base URLs of the other services, each overridable by ``XSN_<SERVICE>_URL``."""
    urls = dict(config["SERVICE_URLS"])
    for name in urls:
        override = config.get(f"{name.upper()}_URL")
        if override:
            urls[name] = str(override).rstrip("/")
    return urls


def local_secret(config: dict[str, Any], name: str, nbytes: int) -> bytes:
    """A secret kept in a file under ``var/`` for the embedded setup, made on first use.

    Production must configure its secrets (``XSN_<NAME>``): this refuses to invent one there.
    """
    if config.get("ENV") == "production":
        raise RuntimeError(f"XSN_{name.upper()} must be set in production")
    path = Path(config["VAR_DIR"]) / f"{name.lower()}.hex"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two workers starting together must not each write a different secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the creator may not have written it yet
            text = path.read_text().strip()
            if text:
                return bytes.fromhex(text)
            time.sleep(0.05)
        raise RuntimeError(f"{path} is empty") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(nbytes))
    return bytes.fromhex(path.read_text().strip())
