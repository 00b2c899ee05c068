"""Plain forwarding of ``/<service>/<path>`` to the service's own base URL.

The gateway sets ``X-Forwarded-Prefix`` so that each service (behind ProxyFix) builds its
own URLs (redirects, OpenAPI docs, pages) under the gateway's prefix.
"""

from __future__ import annotations

import requests
import structlog
from flask import Flask, Response, current_app, g, request

from common.errors import Problem
from common.http import NoCookies
from common.web.observability import REQUEST_ID_HEADER

ROUTED_SERVICES = ("identity", "licenses", "seal", "payment", "messaging")
# RFC 9110 §7.6.1 connection-specific headers are not forwarded.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
log = structlog.get_logger("xsn.gateway")


class UpstreamUnavailable(Problem):
    status, code, title = 502, "upstream_unavailable", "Upstream service unavailable"


class UpstreamTimeout(Problem):
    status, code, title = 504, "upstream_timeout", "Upstream service timed out"


def _forwarded_headers(service: str) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    for name in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix"):
        headers.pop(name, None)
    headers["X-Forwarded-For"] = request.remote_addr or ""
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Prefix"] = f"{request.script_root}/{service}"
    headers[REQUEST_ID_HEADER] = g.request_id
    return headers


def forward(service: str, path: str) -> Response:
    """Send the request to ``service`` and stream its answer back.

    :raise 502: the service refused the connection.
    :raise 504: the service did not answer in time.
    """
    base = current_app.config["SERVICE_URLS"][service]
    url = f"{base}/{path}"
    session: requests.Session = current_app.extensions["xsn_gateway_http"]
    try:
        upstream = session.request(
            request.method, url, params=request.query_string.decode("latin-1") or None,
            headers=_forwarded_headers(service), data=request.get_data(cache=False),
            allow_redirects=False, stream=True,
            timeout=(2.0, float(current_app.config["GATEWAY_UPSTREAM_TIMEOUT"])),
        )
    except requests.Timeout as exc:
        raise UpstreamTimeout(f"{service} did not answer in time") from exc
    except requests.ConnectionError as exc:
        log.warning("upstream_unavailable", upstream=service, error=str(exc)[:200])
        raise UpstreamUnavailable(f"{service} is not reachable") from exc
    headers = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in HOP_BY_HOP]
    headers = [(k, v) for k, v in headers if k.lower() != REQUEST_ID_HEADER.lower()]
    # The body streams without the request context (it needs none); the upstream connection
    # goes back to the pool when the client has read it or gone away.
    body = upstream.raw.stream(64 * 1024, decode_content=False)
    response = Response(body, status=upstream.status_code, headers=headers)
    response.call_on_close(upstream.close)
    return response


def init_proxy(app: Flask) -> None:
    upstream = requests.Session()
    upstream.cookies.set_policy(NoCookies())  # shared by every browser
    app.extensions["xsn_gateway_http"] = upstream
    for service in ROUTED_SERVICES:
        endpoint = f"forward_{service}"

        def view(path: str = "", _service: str = service) -> Response:
            return forward(_service, path)

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        app.add_url_rule(f"/{service}/", endpoint, view, methods=methods, defaults={"path": ""})
        app.add_url_rule(f"/{service}/<path:path>", endpoint, view, methods=methods)
