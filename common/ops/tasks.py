"""One Celery factory for the suite.

Production uses Redis (``XSN_BROKER_URL=redis://...``); the embedded setup uses kombu's
SQLAlchemy transport over a SQLite file, so a real worker process runs tasks without any
server. Tasks are acknowledged late and must be idempotent; durable hand-off is the
transactional outbox in each service (row first, enqueue after).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading

from celery import Celery, signals
from flask import Flask

from common.config import layered, service_module_names, var_dir

# This module's tasks, and each service's ``<service>.tasks`` (found, not imported here: those
# modules import ``celery_app`` from this one). A service module schedules its periodic tasks
# itself (``on_after_finalize``), so beat runs whatever the installed services need.
TASK_MODULES = ["common.ops.tasks", *service_module_names("tasks")]


def broker_url() -> str:
    return os.environ.get("XSN_BROKER_URL") or f"sqla+sqlite:///{var_dir() / 'celery-broker.db'}"


def make_celery(name: str = "xsn", broker: str | None = None) -> Celery:
    app = Celery(name, broker=broker or broker_url(), include=TASK_MODULES)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        timezone="Asia/Shanghai",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    return app


celery_app = make_celery()


@signals.beat_embedded_init.connect
def _quiet_embedded_beat(**_kwargs) -> None:
    """Beat embedded in a worker (``-B``) is ``xsn run``'s: its "Sending due task" line for the
    message hub's relay every second (and the sweeps) made most of the run's log. WARNING keeps
    what goes wrong. A deployment's own beat process keeps the level it is given."""
    logging.getLogger("celery.beat").setLevel(logging.WARNING)


@celery_app.task(name="xsn.ping")
def ping(marker_path: str) -> str:
    """Health task: proves a worker process consumes the broker (writes a marker file)."""
    with open(marker_path, "w", encoding="utf-8") as handle:
        handle.write(f"pong {os.getpid()}\n")
    return "pong"


_apps: dict[str, Flask] = {}
_apps_lock = threading.Lock()


def service_app(service: str) -> Flask:
    """The service's app in this worker process, built on first use and kept: building one
    (configuration, key store, blueprints) for every run of a task sent every few seconds would
    cost more than the task. Tests put their own app in ``_apps``."""
    with _apps_lock:
        app = _apps.get(service)
        if app is None:
            app = _apps[service] = importlib.import_module(service).create_app()
        return app


def numeric_setting(service: str, settings: dict, name: str) -> float:
    """A service's numeric setting (a beat interval, a timeout) read outside its app, layered
    as the app reads it (``common.config.layered``: defaults, ``settings``, ``XSN_*``)."""
    return float(layered(service, settings)[name])
