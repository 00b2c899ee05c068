"""CORS per route, from the route table: which browser origins may call a route, and how.

In a route file, ``cors`` on a route (or on the service, as the default of its routes)::

    cors: {origins: ["https://app.xian.example"], credentials: false, max_age: 600,
           headers: [Authorization, Content-Type], expose: [X-Request-ID]}

or just a list of origins. Origins are exact (``scheme://host[:port]``); there is no ``*``:
every caller of a token route sends a bearer token, and a wildcard would let any page on the
web read answers with it. The gateway is the one place that decides CORS: it answers
preflights itself (``OPTIONS`` with ``Access-Control-Request-Method``, no token needed, as the
Fetch standard sends none), adds the ``Access-Control-*`` headers to answers for allowed
origins (its own problem answers included, so a page can read a 401 or 429) and drops any
the services send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
DEFAULT_EXPOSE = ("X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                  "WWW-Authenticate", "Location")
_KEYS = {"origins", "credentials", "max_age", "headers", "expose"}


class CorsError(ValueError):
    """A ``cors`` entry that cannot be loaded (the route table refuses to start)."""


@dataclass(frozen=True)
class CorsPolicy:
    origins: frozenset[str]
    credentials: bool = False
    max_age: int = 600
    headers: tuple[str, ...] = DEFAULT_HEADERS
    expose: tuple[str, ...] = DEFAULT_EXPOSE

    def allows(self, origin: str | None) -> bool:
        return origin is not None and origin in self.origins

    def response_headers(self, origin: str) -> dict[str, str]:
        """For an actual (non-preflight) answer to an allowed ``origin``."""
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                   "Access-Control-Expose-Headers": ", ".join(self.expose)}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def preflight_headers(self, origin: str, methods: Iterable[str], requested_headers: str) -> dict[str, str] | None:
        """The preflight answer's headers, or ``None`` when a requested header is not allowed."""
        allowed = {h.lower() for h in self.headers}
        asked = [h.strip() for h in requested_headers.split(",") if h.strip()]
        if any(h.lower() not in allowed for h in asked):
            return None
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                   "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
                   "Access-Control-Allow-Headers": ", ".join(self.headers),
                   "Access-Control-Max-Age": str(self.max_age)}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers


def _origin(value: Any, source: str) -> str:
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise CorsError(f"{source}: a CORS origin is scheme://host[:port], not {text!r}")
    return text.lower()


def parse(raw: Any, source: str) -> CorsPolicy | None:
    """:raise CorsError: not a list of origins or a mapping of the known keys."""
    if raw is None:
        return None
    if isinstance(raw, list | tuple):
        raw = {"origins": raw}
    if not isinstance(raw, Mapping) or not set(raw) <= _KEYS or not raw.get("origins"):
        raise CorsError(f"{source}: cors is a list of origins or a mapping with origins and keys from {sorted(_KEYS)}")
    if any(str(o) == "*" for o in raw["origins"]):
        raise CorsError(f"{source}: cors origins must be listed one by one (no *)")
    return CorsPolicy(origins=frozenset(_origin(o, source) for o in raw["origins"]),
                      credentials=bool(raw.get("credentials", False)), max_age=int(raw.get("max_age", 600)),
                      headers=tuple(str(h) for h in raw.get("headers") or DEFAULT_HEADERS),
                      expose=tuple(str(h) for h in raw.get("expose") or DEFAULT_EXPOSE))


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "Origin" in headers and "Access-Control-Request-Method" in headers


# A service's own CORS headers (a lowercase prefix) are dropped from its answers: the gateway
# decides (``boundary.response_headers(..., drop_prefix=)``, in the pass that drops hop-by-hop fields).
SERVICE_HEADERS_DROPPED = "access-control-"


def add_headers(headers: Any, added: Mapping[str, str] | None) -> None:
    """Add a route's CORS headers to an answer's (a multidict), keeping the service's own ``Vary``."""
    for name, value in (added or {}).items():
        if name == "Vary":
            headers.add(name, value)
        else:
            headers[name] = value
