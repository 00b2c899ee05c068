"""Fixtures shared by every service's tests.

Databases are built through each service's Alembic migrations, once per test session into
a template, then copied per test (SQLite: a file copy; PostgreSQL: ``CREATE DATABASE ...
TEMPLATE``), so every test starts from a migrated, empty schema.

``XSN_TEST_DATABASE_URL`` (PostgreSQL) and ``XSN_TEST_REDIS_URL`` switch the same tests to
the real servers; with ``XSN_TEST_REQUIRE_SERVICES=1`` a test that needs them fails
instead of skipping.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from common.ops.migrate import upgrade

REQUIRE_SERVICES = os.environ.get("XSN_TEST_REQUIRE_SERVICES") == "1"
# Apps built without an explicit VAR_DIR must not write into the checkout's var/.
os.environ.setdefault("XSN_VAR_DIR", tempfile.mkdtemp(prefix="xsn-test-var-"))
TEST_KEK = "00112233445566778899aabbccddeeff"
# Property tests judge what code returns, not how fast: hypothesis's default 200 ms deadline per
# example fails them at random on a loaded machine (CI runs the suite twice beside other work).
# Built on the profile hypothesis chose (its "ci" one under CI: derandomised, no example database).
settings.register_profile("xsn", settings.get_profile(settings.get_current_profile_name()), deadline=None)
settings.load_profile("xsn")


def pytest_configure(config) -> None:
    # Registered here rather than in pyproject.toml: the suite's markers live with the suite.
    config.addinivalue_line(
        "markers", "slow: a long fuzz/property run; `make test PYTEST_ARGS='-m \"not slow\"'` skips them locally, "
        "CI (`make test`) runs them")


def need(what: str) -> None:
    """Skip (or fail, when CI requires the real services) a test whose dependency is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (XSN_TEST_REQUIRE_SERVICES=1) but not configured")
    pytest.skip(f"{what} not configured")


class SqliteDatabases:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.templates: dict[str, Path] = {}

    def template(self, service: str) -> Path:
        if service not in self.templates:
            path = self.root / f"template-{service}.db"
            upgrade(service, f"sqlite:///{path}")
            self.templates[service] = path
        return self.templates[service]

    def fresh(self, service: str) -> str:
        path = self.root / f"{service}-{secrets.token_hex(4)}.db"
        shutil.copyfile(self.template(service), path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        pass


class PostgresDatabases:
    """One template database per service, one fresh copy per test; all dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"xsnt_{os.getpid()}_{secrets.token_hex(2)}"
        self.templates: dict[str, str] = {}
        self.created: list[str] = []

    def _create(self, name: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def template(self, service: str) -> str:
        if service not in self.templates:
            name = f"{self.prefix}_tpl_{service}"
            upgrade(service, self._create(name))
            self.templates[service] = name
        return self.templates[service]

    def fresh(self, service: str) -> str:
        return self._create(f"{self.prefix}_{service}_{secrets.token_hex(4)}", self.template(service))

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in reversed(self.created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory) -> Iterator[SqliteDatabases | PostgresDatabases]:
    url = os.environ.get("XSN_TEST_DATABASE_URL")
    backend = PostgresDatabases(url) if url else SqliteDatabases(tmp_path_factory.mktemp("db"))
    yield backend
    backend.close()


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL server URL, for tests that are about PostgreSQL itself."""
    url = os.environ.get("XSN_TEST_DATABASE_URL")
    if not url:
        need("XSN_TEST_DATABASE_URL (PostgreSQL)")
    return url


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("XSN_TEST_REDIS_URL")
    if not url:
        need("XSN_TEST_REDIS_URL (Redis)")
    return url


@pytest.fixture
def make_app(databases, tmp_path) -> Callable:
    """Build a service's app on a fresh, migrated database: ``make_app("seal", FOO=1)``."""
    built = []

    def factory(service: str, **overrides):
        config = {
            "TESTING": True,
            "DATABASE_URL": databases.fresh(service),
            "VAR_DIR": str(tmp_path / "var"),
            "KEK": TEST_KEK,
            "PROXY_HOPS": 1,
        }
        if os.environ.get("XSN_TEST_REDIS_URL"):
            config["REDIS_URL"] = os.environ["XSN_TEST_REDIS_URL"]
        config.update(overrides)
        app = importlib.import_module(service).create_app(config)
        built.append(app)
        return app

    yield factory
    pools = [app.extensions["xsn_db"].engine.pool for app in built]
    # A session the test dropped without closing still holds its connection until it is
    # collected; collected after the dispose below, the connection outlives its pool, is closed
    # by nobody, and psycopg's ResourceWarning fails whichever later test is running then, far
    # from the cause. So the dropped sessions are collected now, while their pools are alive.
    # (A connection something still holds, such as a ledger committer's own, stays its holder's.)
    if any(pool.checkedout() for pool in pools if hasattr(pool, "checkedout")):
        gc.collect()
    for app in built:
        app.extensions["xsn_db"].dispose()


@pytest.fixture
def client(app):
    """The Flask test client of the ``app`` fixture of the test's directory."""
    return app.test_client()


@pytest.fixture
def tokens():
    """Mints access tokens with a key of this test's (``TokenFactory``); ``tokens.install(app)``
    makes an app trust them."""
    from tests.support.suite import TokenFactory

    return TokenFactory()


@pytest.fixture
def serve_app():
    """Serve a WSGI app over real HTTP in a thread until the test ends: ``url = serve_app(app)``
    on a free port, ``serve_app(app, port=port)`` on a chosen one, ``serve_app(app,
    unix_socket=path)`` on a Unix socket (``tests.support.suite.Served``)."""
    from tests.support.suite import Served

    with contextlib.ExitStack() as servers:

        def start(app, **where) -> str:
            return servers.enter_context(Served(app, **where)).url

        yield start


@pytest.fixture(scope="session")
def suite(databases, tmp_path_factory):
    """The real suite: every service under gunicorn, the worker, the simulators, on free ports.

    On PostgreSQL/Redis runs the processes use fresh databases there and Redis as broker.
    """
    from common.config import SERVICES
    from tests.support.suite import start_suite

    env = {"XSN_KEK": TEST_KEK}
    if isinstance(databases, PostgresDatabases):
        for service in SERVICES:
            env[f"XSN_{service.upper()}_DATABASE_URL"] = databases.fresh(service)
    if os.environ.get("XSN_TEST_REDIS_URL"):
        env["XSN_BROKER_URL"] = os.environ["XSN_TEST_REDIS_URL"]
        env["XSN_REDIS_URL"] = os.environ["XSN_TEST_REDIS_URL"]
    running = start_suite(tmp_path_factory.mktemp("suite"), env)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (its own browser download is unavailable)."""
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        if os.environ.get("XSN_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (XSN_TEST_REQUIRE_BROWSER=1) but /usr/bin/chromium is missing")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield instance
        instance.close()
