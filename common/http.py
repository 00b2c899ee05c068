"""Outbound HTTP between services: timeouts, bounded retries, request-id propagation."""

from __future__ import annotations

import http.cookiejar
from collections.abc import Callable

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from common.web.observability import REQUEST_ID_HEADER

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class NoCookies(http.cookiejar.DefaultCookiePolicy):
    """For sessions shared by every caller (the gateway's upstream session, a service client
    held by an app): such a session must never keep a cookie, or the next caller would be
    sent the previous one's."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


class ServiceClient:
    """A client for one peer service.

    Only idempotent methods are retried (connection errors and 502/503/504), so a POST that
    may have reached the peer is never sent twice behind the caller's back.
    ``token_provider`` returns a bearer token (client-credentials) for each call.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, retries: int = 2,
                 token_provider: Callable[[], str] | None = None,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token_provider = token_provider
        if session is None:
            session = requests.Session()
            session.cookies.set_policy(NoCookies())  # one client serves every request of its app
        self.session = session
        retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=0.2,
                      status_forcelist=(502, 503, 504), allowed_methods=IDEMPOTENT,
                      raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            headers.setdefault(REQUEST_ID_HEADER, request_id)
        if self.token_provider is not None:
            headers.setdefault("Authorization", f"Bearer {self.token_provider()}")
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method.upper(), f"{self.base_url}{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)
