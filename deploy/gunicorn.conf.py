"""gunicorn settings for the containers (docker-compose.yml, deploy/k8s): ``gunicorn --config /app/gunicorn.conf.py``.

Prometheus in multiprocess mode: every worker writes its counters to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` (``common.web.observability``) adds up all of
them, so a scrape sees the whole container, not whichever worker answered it. The directory
is emptied when the arbiter starts (files from a previous run would be counted again), and
a dead worker's live gauges are dropped.
"""

from __future__ import annotations

import glob
import os

from common.ops.http_limits import MAX_REQUEST_LINE, upstream_header_limits  # the app's package, in the image

# The heartbeat file of each worker: on tmpfs, so a slow or read-only disk cannot make the
# arbiter think a busy worker hung.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs by design
# Access lines come from the application (one JSON line per request with request id, client and
# subject); gunicorn's own would be a second, poorer line per request.
accesslog = None
errorlog = "-"
graceful_timeout = 20
# Threaded workers keep the gateway's pooled connections alive (sync workers close each after
# one answer, and the edge then pays a new connection per request: 1.4-1.6 ms of its CPU against
# 0.3-0.5 ms, docs/ARCHITECTURE.md "Measured: the edge"); as `xsn run` serves them
# (common.ops.launcher.gunicorn_argv). Keep-alive outlasts the edge's idle pooled connection (15 s).
worker_class = "gthread"
threads = 4
keepalive = 20
timeout = 60
# As long a request line as the gateway's edge accepts (GATEWAY_MAX_HEADER_BYTES, 8190; gunicorn
# allows no more): with gunicorn's default 4094, a longer query got gunicorn's HTML 414 through
# the gateway instead of a problem document (common.ops.http_limits, as `xsn run`).
limit_request_line = MAX_REQUEST_LINE
# Header fields: more, and longer, than the edge lets through (its GATEWAY_MAX_HEADERS and the
# fields it adds; a name and a value each up to GATEWAY_MAX_HEADER_BYTES - 1, where gunicorn counts
# the whole line): with gunicorn's defaults (100 fields, 8190 bytes a line) a request of 97-100
# fields, or with a value of 8182-8189 bytes, passed the edge and got gunicorn's HTML 431. Computed
# by the function `xsn run` uses, from the same XSN_GATEWAY_* settings, so the two cannot drift.
limit_request_fields, limit_request_field_size = upstream_header_limits()


def spread_connections(server) -> None:
    """Each worker its own SO_REUSEPORT socket when there are two or more, as ``xsn run`` serves
    (common.ops.launcher.gunicorn_argv says why): the kernel spreads new connections over the
    workers, where on one shared socket a burst of kept-alive connections mostly went to one
    worker (one GIL), halving a service's throughput at random (docs/ARCHITECTURE.md "How a
    service is served"). One worker keeps the arbiter's socket, which holds new connections
    while a dead worker is replaced. Decided here, from the workers the command line gives
    (``--workers``), before the arbiter opens its socket, and again when a reload re-reads it."""
    server.cfg.set("reuse_port", server.cfg.workers > 1)


on_reload = spread_connections


def on_starting(server) -> None:
    spread_connections(server)
    from common.ops import gunicorn_hooks  # the app's package, installed in the image

    gunicorn_hooks.on_starting(server)  # the address in "Listening at:", which reuse_port leaves empty
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
