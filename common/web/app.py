"""The one application factory every service is built with."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Iterator
from inspect import iscoroutinefunction
from types import FunctionType
from typing import Any

from flask import Flask
from flask_smorest import Api
from jinja2 import ChoiceLoader, PackageLoader
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, UnicodeConverter

from common import config as cfg
from common import db
from common.crypto import gm
from common.web import arguments, auth, database, i18n, observability, page_headers, pages, problems, ratelimit
from common.web.json_provider import OrjsonProvider
from common.web.logging import configure_logging
from common.web.sessions import LazyCookieSessionInterface


class DatabaseIntConverter(IntegerConverter):
    """``<int:...>`` in every service's routes: a non-negative integer an ``Integer`` column
    (every row id) can hold; ``<bigint:...>`` (:class:`DatabaseBigIntConverter`) for a
    ``BigInteger`` one (the append-only logs' leaf indices).

    A path such as ``/seals/s/grants/548699911742244224`` names nothing, so it is a 404; left
    to the database it was a 500 (PostgreSQL refuses an integer parameter beyond 32 bits,
    SQLite one beyond 64).
    """

    default_max = db.INTEGER_MAX

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - werkzeug's parameter name
        kwargs.setdefault("max", self.default_max)
        super().__init__(map, *args, **kwargs)


class DatabaseBigIntConverter(DatabaseIntConverter):
    """``<bigint:...>``: a non-negative integer a ``BigInteger`` column can hold."""

    default_max = db.BIGINT_MAX


class DatabaseTextConverter(UnicodeConverter):
    """``<name>`` (the default converter) in every service's routes: a path segment without
    U+0000. PostgreSQL cannot compare text with it (psycopg refuses the statement: a 500 for
    ``/seals/a%00b``), SQLite can; such a path names nothing, so it is a 404. (The gateway
    refuses control characters in paths already; this holds for callers that reach a service
    directly.)"""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - werkzeug's parameter name
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", r"[^/\x00]", 1)


class ServiceFlask(Flask):
    """Flask, minus a per-request cost nobody here needs.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view on every request (nine
    times for ``/livez``); whether a function is a coroutine function never changes, so the
    answer is remembered per plain function (bound methods are made afresh per request, so
    they are remembered by their underlying function). JSON answers are encoded by orjson
    (:mod:`common.web.json_provider`).
    """

    json_provider_class = OrjsonProvider

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._is_async: dict[FunctionType, bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        code = getattr(func, "__func__", func)
        if type(code) is not FunctionType:  # partials, callable objects: ask every time
            return super().ensure_sync(func)
        is_async = self._is_async.get(code)
        if is_async is None:
            is_async = self._is_async[code] = iscoroutinefunction(func)
        return self.async_to_sync(func) if is_async else func


def create_app(
    service: str,
    test_config: dict[str, Any] | None = None,
    *,
    blueprints: Iterable = (),
    init: Callable[[Flask, Api], None] | None = None,
    import_name: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Flask:
    """Build a service app: defaults -> ``XSN_*`` environment -> ``test_config``.

    ``settings`` are the service's own defaults (every setting the service reads has one,
    so the deployment files can be checked against them); ``init`` wires what is
    particular to the service (OAuth server, pages, tasks) after the common parts exist.
    """
    app = ServiceFlask(import_name or service, instance_relative_config=False)
    app.session_interface = LazyCookieSessionInterface()
    app.url_map.converters["int"] = DatabaseIntConverter  # before any route is added
    app.url_map.converters["bigint"] = DatabaseBigIntConverter
    app.url_map.converters["default"] = app.url_map.converters["string"] = DatabaseTextConverter
    # Each service its own database, session secret and key-encryption key
    # (XSN_<SERVICE>_DATABASE_URL, _SECRET_KEY, _KEK), so a process holding several services'
    # settings (the worker, the migrate job) gives each app its own: resolved by the layering.
    app.config.from_mapping(cfg.layered(service, settings, test_config))
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = cfg.local_secret(app.config, f"secret_key_{service}", 32).hex()
    configure_logging(app.config.get("LOG_LEVEL", "INFO"))
    gm.check_backend(app.config["ENV"])  # production refuses the slow gmssl fallback unless named
    # Service templates first, then the shared shell (base.html) from common/web/templates.
    app.jinja_loader = ChoiceLoader([app.jinja_loader, PackageLoader("common.web", "templates")])
    hops = int(app.config["PROXY_HOPS"])
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)

    database.init_app(app, app.config["DATABASE_URL"])
    observability.init_app(app, service)
    app.before_request(arguments.refuse_nul_in_query_and_form)  # after the request id is set
    ratelimit.init_app(app)
    pages.init_pages(app)
    page_headers.init_app(app)
    i18n.init_i18n(app, {})

    api = problems.ProblemApi(app)
    problems.init_app(app)  # after Api: ours replace flask-smorest's JSON error handlers
    app.extensions["xsn_api"] = api

    from common.web.health import blp as health_blp

    api.register_blueprint(health_blp)
    auth.init_app(app, api)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    if init is not None:
        init(app, api)
    return app


@contextlib.contextmanager
def service_session(service: str) -> Iterator[tuple[Flask, object]]:
    """A service's app (configured from the environment) with a database session, for CLI
    commands; the session rolls back unless committed and the engine is disposed after."""
    app = importlib.import_module(service).create_app()
    try:
        with app.app_context(), db.get_db(app).session() as session:
            yield app, session
    finally:
        db.get_db(app).dispose()
