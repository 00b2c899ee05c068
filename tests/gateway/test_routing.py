"""The route table: the shipped files load, first match wins, listed paths define methods."""

from __future__ import annotations

import pytest

from gateway.edge.problems import MethodNotAllowed
from gateway.edge.routing import RouteTable, RouteTableError, service_from_mapping

SERVICES = ["identity", "licenses", "seal", "payment", "messaging"]


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return RouteTable.load(services=SERVICES)


def test_shipped_files_load_and_every_service_is_routed(table):
    assert {"/identity", "/seal", "/gateway", "/licenses", "/payment", "/messaging"} <= set(table.services)
    assert table.services["/gateway"].upstream == "gateway_admin"
    assert table.services["/seal"].audience == "xsn:seal"


@pytest.mark.parametrize(("path", "method", "public", "pattern"), [
    ("/identity/.well-known/openid-configuration", "GET", True, "/identity/.well-known/openid-configuration"),
    ("/identity/jwks.json", "GET", True, "/identity/jwks.json"),
    ("/identity/oauth/token", "POST", True, "/identity/oauth/token"),
    ("/identity/login", "POST", True, "/identity/login"),
    ("/identity/password/reset/abc", "GET", True, "/identity/password/reset/*"),
    ("/identity/api/v1/people", "GET", False, "/identity/**"),
    ("/seal/verify", "POST", True, "/seal/verify"),
    ("/seal/manage/", "GET", True, "/seal/manage/**"),
    ("/seal/seals/s1/sign", "POST", False, "/seal/seals/*/sign"),
    ("/seal/seals", "GET", False, "/seal/**"),
    ("/licenses/livez", "HEAD", True, "/licenses/livez"),  # no file yet: the defaults
    ("/licenses/anything", "POST", False, "/licenses/**"),
])
def test_matching(table, path, method, public, pattern):
    match = table.match(path, method)
    assert match.route.public is public
    assert match.pattern == pattern


def test_scopes_and_rest(table):
    match = table.match("/seal/seals/s1/sign", "POST")
    assert match.route.scopes == ("seal:sign",) and match.rest == "/seals/s1/sign"
    assert table.match("/identity", "GET").rest == "/"


def test_a_listed_path_defines_its_methods(table):
    with pytest.raises(MethodNotAllowed) as caught:
        table.match("/seal/seals/s1/sign", "GET")
    assert caught.value.extra["headers"]["Allow"] == "POST"
    with pytest.raises(MethodNotAllowed):
        table.match("/payment/livez", "PUT")


def test_unknown_prefix(table):
    assert table.match("/nowhere/x", "GET") is None
    assert table.match("/sealx/livez", "GET") is None


def test_reset_links_are_redacted_in_audit():
    table = RouteTable.load(services=[])
    assert table.match("/identity/password/reset/secret-token", "GET").route.redact


@pytest.mark.parametrize("raw", [
    {"prefix": "/a/b"},
    {"routes": [{"path": "x"}]},
    {"routes": [{"path": "/x", "auth": "maybe"}]},
    {"routes": [{"path": "/x", "methods": ["BREW"]}]},
    {"routes": [{"path": "/x", "auth": "public", "scopes": ["a"]}]},
    {"routes": [{"path": "/**/x"}]},
    {"unknown": 1},
    {"routes": [{"path": "/x", "color": "red"}]},
])
def test_malformed_route_files_are_refused(raw):
    with pytest.raises(RouteTableError):
        service_from_mapping("svc", raw, default_timeout=1, default_max_body=1)


def test_two_files_claiming_one_prefix_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("prefix: /same\n")
    (tmp_path / "b.yaml").write_text("prefix: /same\n")
    with pytest.raises(RouteTableError):
        RouteTable.load(tmp_path)


def test_a_path_may_be_public_for_one_method_and_protected_for_another(table):
    assert table.match("/seal/seals/s1/image", "GET").route.public
    put = table.match("/seal/seals/s1/image", "PUT")
    assert not put.route.public and put.route.scopes == ("seal:admin",)


def test_every_audit_path_the_gateway_app_registers_is_routed_as_intended(table):
    """The route file and gateway/audit's blueprints agree: the console public, the API audit:read."""
    from gateway import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/audit/")]
    assert {"/audit/records", "/audit/export", "/audit/console/", "/audit/console/callback"} <= {r.rule for r in rules}
    for rule in rules:
        path = "/gateway" + rule.rule.replace("<int:index>", "7")
        for method in sorted(rule.methods - {"OPTIONS"}):
            match = table.match(path, method)
            assert match is not None and match.service.audience == "xsn:gateway", (path, method)
            if rule.rule.startswith("/audit/console/"):
                assert match.route.public, (path, method)
            else:
                assert not match.route.public and set(match.route.scopes) == {"audit:read"}, (path, method)
