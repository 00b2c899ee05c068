"""Request ids, access logs and Prometheus metrics for every service.

Every request pays for this, so it is written for cost as well as clarity (issue 9): the
request and ``g`` proxies are resolved once per hook, metric children are looked up in a
dict instead of through ``labels()`` (which validates and locks on every call), the request
id is 16 random bytes in hex, and the access line is rendered by orjson (see
``common.web.logging``).
"""

from __future__ import annotations

import os
import time

import structlog
from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from common.http import REQUEST_ID_HEADER  # defined with the client that sends it
from common.request_ids import REQUEST_ID_RE, new_request_id
from common.web.context import current_request, request_globals
from common.web.logging import log_access

_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
access_log = structlog.get_logger("xsn.access")


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under gunicorn each worker writes its own files; /metrics aggregates them.
        multiprocess.MultiProcessCollector(registry)
    return registry


class _Children(dict):
    """Metric children by label values, created on first use (``labels()`` costs a lock
    and label validation per call; a dict hit costs neither)."""

    def __init__(self, metric) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, labels: tuple[str, ...]):
        child = self[labels] = self.metric.labels(*labels)
        return child


def init_app(app: Flask, service: str) -> None:
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    # One registry per app: several apps can live in one test process.
    # In multiprocess mode values go to per-worker files and registry=None avoids
    # registering twice in the global registry.
    registry = None if multiproc else CollectorRegistry()
    kwargs = {"registry": registry}
    requests_total = _Children(Counter("xsn_http_requests_total", "HTTP requests",
                                       ["service", "method", "route", "status"], **kwargs))
    latency = _Children(Histogram("xsn_http_request_duration_seconds", "HTTP request latency",
                                  ["service", "method", "route"], **kwargs))
    # Probes, scrapes and polls (a kubelet's or the edge's /livez every few seconds, the edge's
    # revocation poll every second) would bury every other line at INFO: their lines are DEBUG.
    quiet = app.config.get("ACCESS_LOG_DEBUG_ROUTES") or ()
    # XSN_...=/livez,/readyz too (spaces after the commas are not part of a route)
    quiet = frozenset(r.strip() for r in (quiet.split(",") if isinstance(quiet, str) else quiet) if r.strip())
    bind_contextvars = structlog.contextvars.bind_contextvars
    clear_contextvars = structlog.contextvars.clear_contextvars

    @app.before_request
    def _start() -> None:
        ctx = request_globals()
        ctx.request_started = time.perf_counter()
        incoming = current_request().environ.get(_REQUEST_ID_ENVIRON)
        ctx.request_id = incoming if incoming and REQUEST_ID_RE.match(incoming) else new_request_id()
        # Under sync workers one thread serves request after request: start each one clean.
        clear_contextvars()
        bind_contextvars(request_id=ctx.request_id, service=service)

    @app.after_request
    def _finish(response: Response) -> Response:
        ctx, req = request_globals(), current_request()
        request_id = getattr(ctx, "request_id", None) or new_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        route = req.url_rule.rule if req.url_rule else "<unmatched>"
        elapsed = time.perf_counter() - getattr(ctx, "request_started", time.perf_counter())
        method, status = req.method, response.status_code
        requests_total[service, method, route, str(status)].inc()
        latency[service, method, route].observe(elapsed)
        log_access(access_log, {"method": method, "path": req.path, "status": status,
                                "duration_ms": round(elapsed * 1000, 2),
                                "client_id": getattr(ctx, "client_id", None),
                                "subject": getattr(ctx, "subject", None)}, debug=route in quiet)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        data = generate_latest(_registry() if multiproc else registry)
        # content_type, not mimetype: Flask would add a second '; charset=utf-8' to the exposition format's.
        return Response(data, content_type=CONTENT_TYPE_LATEST)
