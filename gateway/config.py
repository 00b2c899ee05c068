"""Every setting of the gateway, declared once, and the configuration its processes outside
Flask read (the edge, the audit writer): the same layers as every app's ``create_app``
(``common.config.layered``).
"""

from __future__ import annotations

from typing import Any

from common import config as cfg

SETTINGS: dict[str, Any] = {
    "GATEWAY_UPSTREAM_TIMEOUT": 30.0,  # seconds to wait for a service's answer (504 after); routes may set their own
    "GATEWAY_ROUTES_DIR": None,  # the route files (gateway/edge/routing.py); None: gateway/routes in the package
    # The trusted boundary (gateway.edge.boundary).
    "GATEWAY_PUBLIC_HOSTS": "",  # more Host values served besides PUBLIC_BASE_URL's (comma separated)
    "GATEWAY_TRUSTED_PROXIES": "",  # CIDRs of front proxies (load balancers) whose X-Forwarded-For counts
    "GATEWAY_TRUSTED_HOPS": 0,  # how many such proxies in a row (0: one when any are listed)
    # Connections (gateway.edge.protocol).
    "GATEWAY_WORKERS": 1,  # processes sharing the port (SO_REUSEPORT); production: one per core
    "GATEWAY_HEADER_TIMEOUT": 10.0,  # seconds to send a whole request head (408 after)
    "GATEWAY_BODY_TIMEOUT": 30.0,  # seconds to send a whole request body (408 after)
    "GATEWAY_IDLE_TIMEOUT": 60.0,  # seconds a keep-alive connection may wait for its next request
    "GATEWAY_MAX_CONNECTIONS": 10000,  # open connections per process (503 beyond)
    # request target (414 beyond; at most 8190, the services' gunicorn's ceiling, checked at startup);
    # each header field one less (431 beyond)
    "GATEWAY_MAX_HEADER_BYTES": 8190,
    "GATEWAY_MAX_HEADERS": 100,  # header fields per request (431 beyond)
    "GATEWAY_MAX_BODY_BYTES": 1048576,  # default for routes that set none (413 beyond)
    # Upstreams (gateway.edge.upstreams).
    "GATEWAY_UPSTREAM_CONNECTIONS": 256,  # pooled keep-alive connections per upstream per process
    "GATEWAY_RETRIES": 2,  # extra attempts for idempotent methods
    # upstream name -> the absolute path of its Unix domain socket on this host, used instead of
    # its URL's host:port (which stays the Host the service is told); unlisted upstreams: TCP.
    # An unknown name or a relative path is refused at startup.
    "GATEWAY_UPSTREAM_SOCKETS": {},
    "GATEWAY_BREAKER_FAILURES": 5,  # consecutive failures that open an upstream's circuit
    "GATEWAY_BREAKER_OPEN": 5.0,  # seconds an open circuit refuses before a probe
    "GATEWAY_ADMIN_URL": None,  # this Flask app; None: the edge starts it on a free loopback port
    # Rate limits per client and route (gateway.edge.limits): name -> {rate per s, burst}.
    "GATEWAY_RATE_LIMITS": {
        "default": {"rate": 50, "burst": 200},
        "login": {"rate": 1, "burst": 60},  # identity keeps its own, stricter per-account limits
        "token_endpoint": {"rate": 20, "burst": 100},
        "public_verify": {"rate": 20, "burst": 100},
    },
    # Access tokens and revocation (gateway.edge.tokens, gateway.edge.revocations).
    "GATEWAY_JWKS_MIN_REFRESH": 10.0,  # seconds between JWKS fetches on an unknown kid
    "GATEWAY_CLIENT_ID": "xsn-gateway",
    "GATEWAY_CLIENT_SECRET": None,  # embedded: identity's seed writes it to var/clients.json
    "GATEWAY_REVOCATION_POLL": 1.0,  # seconds between polls of identity's revocation feed
    # Audit (gateway.edge.audit_sink): "audit" (the durable log, gateway/audit/), "memory"
    # (unit tests only: lost with the process), or "module:factory".
    "GATEWAY_AUDIT_SINK": "audit",
}


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from gateway.audit.config import SETTINGS as AUDIT_SETTINGS

    # The audit writer must use the same database (XSN_GATEWAY_DATABASE_URL) and KEK as the
    # admin app: common.config.layered resolves them as create_app does.
    return cfg.layered("gateway", {**SETTINGS, **AUDIT_SETTINGS}, overrides)
