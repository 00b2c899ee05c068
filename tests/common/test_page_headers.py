"""Pages carry the security headers (no framing, no script, no Referer to other sites); every
answer nosniff; Swagger UI gets its own policy and its assets from the service, not a CDN."""

from __future__ import annotations

import pytest

from common.web.page_headers import DOCS_POLICY, PAGE_POLICY

PAGE_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@pytest.fixture
def identity(make_app):
    return make_app("identity").test_client()


@pytest.mark.parametrize("path", ["/login", "/password/forgot", "/register"])
def test_identity_pages_cannot_be_framed_and_run_no_script(identity, path):
    response = identity.get(path)
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert policy == PAGE_POLICY and "frame-ancestors 'none'" in policy and "script-src" not in policy
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value


def test_json_answers_get_no_page_policy_but_nosniff(identity):
    response = identity.get("/livez")
    assert response.status_code == 200 and response.is_json
    assert "Content-Security-Policy" not in response.headers and "X-Frame-Options" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # on every answer


def test_swagger_ui_loads_its_assets_from_the_service_under_its_own_policy(identity):
    page = identity.get("/docs", headers={"X-Forwarded-Prefix": "/identity"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cdn." not in html and "https://" not in html.split("<body>")[0]
    assert 'src="docs/assets/swagger-ui-bundle.js"' in html  # relative: under any prefix
    assert '"/identity/openapi.json"' in html  # the spec under the gateway's prefix
    assert page.headers["Content-Security-Policy"] == DOCS_POLICY
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        asset = identity.get(f"/docs/assets/{name}")
        assert asset.status_code == 200 and len(asset.get_data()) > 10_000, name
        asset.close()


@pytest.mark.parametrize("path", ["/docs/assets/../../__init__.py", "/docs/assets/%2e%2e/__init__.py",
                                  "/docs/assets/nothing.js"])
def test_nothing_outside_swagger_ui_s_files_is_served(identity, path):
    assert identity.get(path).status_code == 404
