"""Request ids, access logs and Prometheus metrics for every service."""

from __future__ import annotations

import os
import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from common.http import REQUEST_ID_HEADER  # defined with the client that sends it

# Accept a caller's id only if it is short and plain, so it cannot inject into logs.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
access_log = structlog.get_logger("xsn.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under gunicorn each worker writes its own files; /metrics aggregates them.
        multiprocess.MultiProcessCollector(registry)
    return registry


def init_app(app: Flask, service: str) -> None:
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    # One registry per app: several apps can live in one test process.
    # In multiprocess mode values go to per-worker files and registry=None avoids
    # registering twice in the global registry.
    registry = None if multiproc else CollectorRegistry()
    kwargs = {"registry": registry}
    requests_total = Counter("xsn_http_requests_total", "HTTP requests",
                             ["service", "method", "route", "status"], **kwargs)
    latency = Histogram("xsn_http_request_duration_seconds", "HTTP request latency",
                        ["service", "method", "route"], **kwargs)

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else new_request_id()
        g.request_started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id, service=service)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or new_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        requests_total.labels(service, request.method, route, str(response.status_code)).inc()
        latency.labels(service, request.method, route).observe(elapsed)
        if route != "/metrics":
            access_log.info("request", method=request.method, path=request.path,
                            status=response.status_code, duration_ms=round(elapsed * 1000, 2),
                            client_id=g.get("client_id"), subject=g.get("subject"))
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        data = generate_latest(_registry() if multiproc else registry)
        return Response(data, mimetype=CONTENT_TYPE_LATEST)
