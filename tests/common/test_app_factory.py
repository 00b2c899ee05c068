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


def test_metrics_count_requests_by_route_and_status(make_app):
    client = make_app("seal").test_client()
    client.get("/livez")
    client.get("/nope")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'xsn_http_requests_total{method="GET",route="/livez",service="seal",status="200"} 1.0' in text
    assert 'route="<unmatched>",service="seal",status="404"} 1.0' in text
    assert "xsn_http_request_duration_seconds_bucket" in text


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
