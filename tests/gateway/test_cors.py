"""CORS per route from the route table: preflights answered at the edge, headers on answers
(the gateway's own problems included), upstream CORS headers dropped, bad entries refused."""

from __future__ import annotations

import pytest
import requests

from gateway.edge.routing import RouteTableError, service_from_mapping
from tests.gateway.conftest import route_files, seal_routes

APP = "https://app.xian.example"
SEAL_ROUTES = seal_routes(
    "{path: /livez, methods: [GET], auth: public}",
    '{path: /seals/**, methods: [GET, POST], auth: token, scopes: ["seal:read"]}',
    '{path: /private, methods: [GET], auth: public, cors: {origins: ["https://other.example"], credentials: true}}',
    origin=APP)


@pytest.fixture
def edge(start_edge, tmp_path):
    return start_edge(GATEWAY_ROUTES_DIR=route_files(tmp_path, write={"seal.yaml": SEAL_ROUTES}))


def _preflight(edge, path: str, origin: str, method: str = "POST", headers: str = "Authorization, Content-Type"):
    return requests.options(f"{edge.url}{path}", headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                           "Access-Control-Request-Headers": headers}, timeout=5)


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(edge):
    response = _preflight(edge, "/seal/seals/1", APP)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    record = edge.records(response.headers["X-Request-ID"])[0]
    assert record["reason"] == "cors_preflight" and record["upstream"] is None and record["status"] == 204


def test_a_preflight_from_another_origin_or_with_an_unlisted_header_is_refused(edge):
    for response in (_preflight(edge, "/seal/seals/1", "https://evil.example"),
                     _preflight(edge, "/seal/seals/1", APP, headers="X-Secret")):
        assert response.status_code == 403 and response.json()["code"] == "cors_refused"
        assert "Access-Control-Allow-Origin" not in response.headers
        assert edge.records(response.headers["X-Request-ID"])[0]["outcome"] == "denied"


def test_answers_to_an_allowed_origin_carry_cors_headers_problems_included(edge):
    ok = requests.get(f"{edge.url}/seal/livez", headers={"Origin": APP}, timeout=5)
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == APP
    assert "X-Request-ID" in ok.headers["Access-Control-Expose-Headers"] and "Origin" in ok.headers["Vary"]
    denied = requests.get(f"{edge.url}/seal/seals/1", headers={"Origin": APP}, timeout=5)
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == APP  # readable by the page
    other = requests.get(f"{edge.url}/seal/livez", headers={"Origin": "https://evil.example"}, timeout=5)
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers


def test_a_route_policy_overrides_the_service_default(edge):
    own = requests.get(f"{edge.url}/seal/private", headers={"Origin": "https://other.example"}, timeout=5)
    assert own.headers["Access-Control-Allow-Origin"] == "https://other.example"
    assert own.headers["Access-Control-Allow-Credentials"] == "true"
    service_default = requests.get(f"{edge.url}/seal/private", headers={"Origin": APP}, timeout=5)
    assert "Access-Control-Allow-Origin" not in service_default.headers


def test_the_services_own_cors_headers_are_dropped(edge):
    token = edge.tokens.bearer(aud="xsn:seal")
    plain = requests.get(f"{edge.url}/seal/cors", headers=token, timeout=5)
    assert plain.status_code == 200 and not [h for h in plain.headers if h.lower().startswith("access-control-")]
    allowed = requests.get(f"{edge.url}/seal/cors", headers={**token, "Origin": APP}, timeout=5)
    assert allowed.headers["Access-Control-Allow-Origin"] == APP  # the route's policy, not the service's *
    assert "Access-Control-Allow-Credentials" not in allowed.headers


def test_routes_without_cors_behave_as_before(edge):
    # identity's file has no cors: a preflight is an OPTIONS like any other (here 401 or 405, not 204).
    response = _preflight(edge, "/identity/jwks.json", APP, method="GET")
    assert response.status_code != 204 and "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("cors", ["*", ["*"], ["https://app.example/path"], {"origins": []},
                                  {"origins": ["https://a.example"], "unknown": 1}, ["ftp://a.example"]])
def test_bad_cors_entries_are_refused_at_load(cors):
    with pytest.raises(RouteTableError):
        service_from_mapping("seal", {"routes": [{"path": "/x", "cors": cors}]}, default_timeout=1,
                             default_max_body=1)
