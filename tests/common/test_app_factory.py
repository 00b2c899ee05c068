"""Every service is built by the same factory and answers health, metrics and OpenAPI."""

from __future__ import annotations

import pytest

from common.config import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_health_endpoints(make_app, service):
    client = make_app(service).test_client()
    assert client.get("/livez").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


@pytest.mark.parametrize("service", SERVICES)
def test_info_goes_through_the_database(make_app, service):
    client = make_app(service).test_client()
    body = client.get("/info").json
    assert body["service"] == service
    assert body["schema_revision"].startswith(service)  # read from alembic_version
    assert body["gm_backend"] in ("tongsuopy", "gmssl")


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_document_is_generated(make_app, service):
    client = make_app(service).test_client()
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    assert "/info" in spec["paths"]
    assert "/readyz" in spec["paths"]


def test_request_id_is_echoed_or_generated(make_app):
    client = make_app("identity").test_client()
    echoed = client.get("/livez", headers={"X-Request-ID": "abc12345-req"})
    assert echoed.headers["X-Request-ID"] == "abc12345-req"
    generated = client.get("/livez", headers={"X-Request-ID": "bad value; drop"})
    assert len(generated.headers["X-Request-ID"]) == 32


def test_readiness_fails_as_problem_when_database_is_gone(make_app, tmp_path):
    app = make_app("payment", DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/x.db")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "database_unavailable"


def test_environment_layer_overrides_defaults(monkeypatch, tmp_path):
    import seal

    monkeypatch.setenv("XSN_SEAL_DATABASE_URL", f"sqlite:///{tmp_path}/from-env.db")
    monkeypatch.setenv("XSN_MAX_CONTENT_LENGTH", "2048")
    app = seal.create_app()
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path}/from-env.db"
    assert app.config["MAX_CONTENT_LENGTH"] == 2048
    overridden = seal.create_app({"MAX_CONTENT_LENGTH": 10})
    assert overridden.config["MAX_CONTENT_LENGTH"] == 10


def _revision_rows(app) -> list[str]:
    from sqlalchemy import text

    with app.extensions["xsn_db"].engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_readiness_fails_when_the_schema_is_behind_the_code(make_app):
    """New code on an old schema would fail at its first query: not ready until migrated."""
    from common.ops.migrate import downgrade, upgrade

    app = make_app("seal")
    url = app.config["DATABASE_URL"]
    head = _revision_rows(app)
    app.extensions["xsn_db"].dispose()
    downgrade("seal", url, "-1")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert response.json["code"] == "schema_behind" and "xsn migrate seal" in response.json["detail"]
    upgrade("seal", url)
    assert _revision_rows(app) == head
    assert app.test_client().get("/readyz").json == {"status": "ready"}


def test_readiness_fails_on_a_database_never_migrated(make_app, tmp_path):
    app = make_app("payment", DATABASE_URL=f"sqlite:///{tmp_path}/empty.db")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["code"] == "schema_behind"
    assert "not migrated" in response.json["detail"]


def test_a_schema_ahead_of_the_code_stays_ready(make_app):
    """A newer release migrated the database; this one keeps serving during a rolling deployment."""
    from sqlalchemy import text

    from common.ops.migrate import schema_state

    app = make_app("payment")
    with app.extensions["xsn_db"].engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'payment_9999_from_the_future'"))
    assert app.test_client().get("/readyz").json == {"status": "ready"}
    assert schema_state("payment", {"payment_9999_from_the_future"}) == "ahead"
    assert schema_state("payment", set()) == "behind"


# (service, method, path with {n} for the number, scope): every route with an integer in its path.
INTEGER_PATHS = [
    ("identity", "DELETE", "/api/v1/grants/{n}", "identity:admin"),
    ("seal", "DELETE", "/seals/s-1/grants/{n}", "seal:admin"),
    ("messaging", "GET", "/inbox/{n}", "messaging:inbox"),
    ("messaging", "POST", "/inbox/{n}/read", "messaging:inbox"),
    ("messaging", "DELETE", "/inbox/{n}", "messaging:inbox"),
    ("messaging", "POST", "/dead-letters/{n}/replay", "messaging:send"),
    ("messaging", "POST", "/apps/a/templates/c/versions/{n}/approve-sms", "messaging:admin"),
]


@pytest.mark.parametrize(("service", "method", "path", "scope"), INTEGER_PATHS)
def test_an_id_beyond_an_integer_column_names_nothing(make_app, service, method, path, scope):
    """Row ids are ``Integer`` columns: a larger number in the path is a 404 problem, not the
    database's refusal (PostgreSQL: "integer out of range", a 500; the API fuzz sweep's finding)."""
    from tests.support.suite import TokenFactory

    tokens = TokenFactory()
    app = make_app(service)
    tokens.install(app)
    headers = tokens.bearer(scope=scope, aud=f"xsn:{service}")
    for number in (2**31, 2**40, 2**63 - 1):
        response = app.test_client().open(path.format(n=number), method=method, headers=headers, json={})
        assert (response.status_code, response.mimetype) == (404, "application/problem+json"), response.data


def test_a_log_index_is_a_64_bit_number(make_app):
    """The logs' leaf indices are ``BigInteger``: an index past 32 bits reaches the view (no such
    entry), one past 64 bits names nothing at all."""
    from tests.support.suite import TokenFactory

    tokens = TokenFactory()
    app = make_app("seal")
    tokens.install(app)
    headers = tokens.bearer(scope="audit:read")
    client = app.test_client()
    assert client.get(f"/log/entries/{2**40}", headers=headers).get_json()["code"] == "log_entry_not_found"
    assert client.get(f"/log/entries/{2**64}", headers=headers).get_json()["code"] == "not_found"  # routing's


def test_a_path_segment_with_a_nul_character_names_nothing(make_app):
    """PostgreSQL cannot compare text with U+0000: GET /seals/a%00b was a 500 there."""
    from tests.support.suite import TokenFactory

    tokens = TokenFactory()
    app = make_app("seal")
    tokens.install(app)
    client = app.test_client()
    answer = client.get("/seals/a%00b", headers=tokens.bearer(scope="seal:admin"))
    assert (answer.status_code, answer.get_json()["code"]) == (404, "not_found")  # routing's
    other = client.get("/seals/no-such-seal", headers=tokens.bearer(scope="seal:admin"))
    assert other.get_json()["code"] == "seal_not_found"  # an ordinary segment still reaches the view
