"""Outbound HTTP to peers and upstreams: timeouts, bounded retries, request-id propagation.

Every call a service makes to another service or to an outside party (an upstream identity
provider, the population register) goes through :class:`ServiceClient`. It is plain
``requests`` plus urllib3 (no Flask), so domain modules may hold one.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Callable, Mapping
from typing import Any

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

REQUEST_ID_HEADER = "X-Request-ID"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_AFTER_MAX = 2.0  # seconds a Retry-After may hold the calling worker (config HTTP_RETRY_AFTER_MAX)


class NoCookies(http.cookiejar.DefaultCookiePolicy):
    """For sessions shared by every caller (the gateway's upstream session, a service client
    held by an app): such a session must never keep a cookie, or the next caller would be
    sent the previous one's."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


class CappedRetry(Retry):
    """urllib3's retry, but a ``Retry-After`` longer than ``wait_max`` ends the retries.

    urllib3 sleeps for whatever ``Retry-After`` a peer sends (``3600`` holds a sync worker for
    an hour). A wait within the cap is honoured; a longer one is not waited for at all: the
    caller gets the peer's answer (with its ``Retry-After``) at once and decides.
    """

    def __init__(self, *args: Any, wait_max: float = RETRY_AFTER_MAX, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not urllib3's own ``retry_after_max`` (2.5+), which shortens the wait and retries
        # early, against the peer's request; here a long wait means no retry.
        self.wait_max = wait_max

    def new(self, **kwargs: Any) -> CappedRetry:
        retry = super().new(**kwargs)
        retry.wait_max = self.wait_max
        return retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        wait = self.get_retry_after(response) if response is not None else None
        if wait is not None and wait > self.wait_max:
            # With raise_on_status=False urllib3 hands the response back instead of raising.
            raise MaxRetryError(_pool, url, ResponseError(
                f"Retry-After {wait:g}s is beyond the {self.wait_max:g}s a worker may wait"))
        return super().increment(method, url, response=response, error=error, _pool=_pool,
                                 _stacktrace=_stacktrace)


class ServiceClient:
    """A client for one peer service or upstream.

    Only idempotent methods are retried (connection errors and 502/503/504), so a POST that
    may have reached the peer is never sent twice behind the caller's back; a ``Retry-After``
    is honoured up to ``retry_after_max`` seconds. ``token_provider`` returns a bearer token
    (client-credentials) for each call to ``base_url``; an absolute URL elsewhere (an
    upstream's token endpoint named by its discovery document) never gets that token.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, retries: int = 2,
                 retry_after_max: float = RETRY_AFTER_MAX,
                 token_provider: Callable[[], str] | None = None,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token_provider = token_provider
        if session is None:
            session = requests.Session()
            session.cookies.set_policy(NoCookies())  # one client serves every request of its app
        self.session = session
        retry = CappedRetry(total=retries, connect=retries, read=retries, backoff_factor=0.2,
                            status_forcelist=(502, 503, 504), allowed_methods=IDEMPOTENT,
                            raise_on_status=False, wait_max=retry_after_max)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @classmethod
    def from_config(cls, base_url: str, config: Mapping[str, Any], **kwargs: Any) -> ServiceClient:
        """A client with the service's ``HTTP_TIMEOUT``, ``HTTP_RETRIES`` and ``HTTP_RETRY_AFTER_MAX``."""
        kwargs.setdefault("timeout", float(config.get("HTTP_TIMEOUT", 5.0)))
        kwargs.setdefault("retries", int(config.get("HTTP_RETRIES", 2)))
        kwargs.setdefault("retry_after_max", float(config.get("HTTP_RETRY_AFTER_MAX", RETRY_AFTER_MAX)))
        return cls(base_url, **kwargs)

    def url(self, path: str) -> str:
        """``path`` under the base URL, or ``path`` itself if it is an absolute http(s) URL."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            headers.setdefault(REQUEST_ID_HEADER, request_id)
        url = self.url(path)
        if self.token_provider is not None and url.startswith(self.base_url + "/"):
            headers.setdefault("Authorization", f"Bearer {self.token_provider()}")
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method.upper(), url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)
