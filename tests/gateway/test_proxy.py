"""The gateway forwards /<service>/... over real HTTP and speaks problem+json when it cannot."""

from __future__ import annotations

import pytest

from tests.support.suite import free_port


@pytest.fixture
def gateway(make_app, serve_app):
    seal_url = serve_app(make_app("seal"))
    app = make_app("gateway", SEAL_URL=seal_url, PAYMENT_URL=f"http://127.0.0.1:{free_port()}")
    app.config["SERVICE_URLS"]["seal"] = seal_url
    app.config["SERVICE_URLS"]["payment"] = f"http://127.0.0.1:{free_port()}"
    return app.test_client()


def test_forwards_and_keeps_request_id(gateway):
    response = gateway.get("/seal/info", headers={"X-Request-ID": "trace-0001"})
    assert response.status_code == 200
    assert response.json["service"] == "seal"
    assert response.headers["X-Request-ID"] == "trace-0001"


def test_upstream_builds_urls_under_the_gateway_prefix(gateway):
    response = gateway.get("/seal/docs")
    assert response.status_code == 200
    assert "/seal/openapi.json" in response.get_data(as_text=True)


def test_upstream_problem_passes_through(gateway):
    response = gateway.get("/seal/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "not_found"


def test_query_string_and_body_are_forwarded(gateway):
    response = gateway.post("/seal/livez?x=1", json={"a": 1})
    assert response.status_code == 405  # reached the seal service, which has GET only


def test_unreachable_upstream_is_a_problem(gateway):
    response = gateway.get("/payment/info")
    assert response.status_code == 502
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "upstream_unavailable"


def test_gateway_own_routes(gateway):
    assert gateway.get("/livez").json == {"status": "ok"}
    assert gateway.get("/unknown-service/x").json["code"] == "not_found"


def test_gateway_never_touches_a_service_session_cookie(make_app, serve_app, tmp_path):
    """Services share the gateway's host: the gateway must not decode and re-send their cookies."""
    from flask import session

    shared_var = str(tmp_path / "shared-var")
    seal_app = make_app("seal", VAR_DIR=shared_var, SECRET_KEY=None)

    @seal_app.get("/probe/login")
    def probe_login():
        session.permanent = True
        session["who"] = "someone"
        return {"ok": True}

    seal_url = serve_app(seal_app)
    gateway_app = make_app("gateway", VAR_DIR=shared_var, SECRET_KEY=None)
    gateway_app.config["SERVICE_URLS"]["seal"] = seal_url
    assert gateway_app.config["SECRET_KEY"] != seal_app.config["SECRET_KEY"]
    client = gateway_app.test_client()
    first = client.get("/seal/probe/login")
    cookies = first.headers.getlist("Set-Cookie")
    assert len(cookies) == 1 and cookies[0].startswith("xsn_seal_session=")
    again = client.get("/seal/livez")  # the browser sends the cookie back
    # Only the service's own refresh of its permanent session, never a gateway copy.
    refreshed = again.headers.getlist("Set-Cookie")
    assert len(refreshed) == 1 and refreshed[0].startswith("xsn_seal_session=")


def test_one_browser_s_session_is_never_sent_for_another(make_app, serve_app):
    """The gateway's upstream HTTP session is shared: it must not keep cookies between browsers."""
    from flask import request, session

    seal_app = make_app("seal")

    @seal_app.get("/probe/login")
    def probe_login():
        session["who"] = "someone"
        return {"ok": True}

    @seal_app.get("/probe/who")
    def probe_who():
        return {"who": session.get("who"), "cookie": request.headers.get("Cookie")}

    gateway_app = make_app("gateway")
    gateway_app.config["SERVICE_URLS"]["seal"] = serve_app(seal_app)
    assert gateway_app.test_client().get("/seal/probe/login").status_code == 200
    stranger = gateway_app.test_client().get("/seal/probe/who").json  # another browser, no cookies
    assert stranger == {"who": None, "cookie": None}
