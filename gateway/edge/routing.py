"""The route table: one YAML file per service under ``gateway/routes/`` (BRIEF contract 3).

```yaml
prefix: /licenses            # the service's prefix at the gateway
upstream: licenses           # a name in SERVICE_URLS
timeout_s: 30                # optional
max_body_bytes: 1048576      # optional
audience: xsn:licenses       # optional; default xsn:<file name>
routes:                      # first match (path and method) wins; path relative to the prefix
  - {path: /livez, methods: [GET, HEAD], auth: public}
  - {path: /verify/**, methods: [GET, POST], auth: public, rate_limit: public_verify}
  - {path: /licenses/**, methods: [POST], auth: token, scopes: [licenses:issue]}
  - {path: /password/reset/*, methods: [GET, POST], auth: public, redact: true}
```

``*`` matches one path segment, ``**`` the rest of the path (zero or more segments). The
routes whose path matches define the methods of that path: another method is answered 405
(``GET`` implies ``HEAD``). A path no route lists needs a valid token with any scope (the
service checks its scopes too): the table lists what is public, never what is protected.
``redact: true`` puts the route's pattern instead of the path into the audit record (for
paths that carry a secret). ``cors`` (on a route, or on the service as its routes' default)
lists the browser origins that may call it (:mod:`gateway.edge.cors`).

A service in ``common.config.SERVICES`` without a file is still routed under ``/<service>``
to its upstream with :data:`DEFAULT_PUBLIC` only: its health and API documents are public,
everything else needs a token. So a new service is reachable (and protected) before it
writes its own file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.edge import cors
from gateway.edge.problems import MethodNotAllowed

ROUTES_DIR = Path(__file__).resolve().parent.parent / "routes"
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DEFAULT_PUBLIC = ("/livez", "/readyz", "/info", "/metrics", "/openapi.json", "/docs")
_SERVICE_KEYS = {"prefix", "upstream", "timeout_s", "max_body_bytes", "audience", "routes", "cors"}
_ROUTE_KEYS = {"path", "methods", "auth", "scopes", "rate_limit", "redact", "cors"}


class RouteTableError(ValueError):
    """A route file that cannot be loaded: the gateway refuses to start rather than guess."""


@dataclass(frozen=True)
class Route:
    path: str
    methods: frozenset[str]
    auth: str = "token"  # "public" | "token"
    scopes: tuple[str, ...] = ()
    rate_limit: str = "default"
    redact: bool = False
    segments: tuple[str, ...] = field(default=(), compare=False, repr=False)
    cors: cors.CorsPolicy | None = None

    @property
    def public(self) -> bool:
        return self.auth == "public"

    def matches(self, segments: list[str], method: str) -> bool:
        return method in self.methods and _match(self.segments, segments)


@dataclass(frozen=True)
class Service:
    name: str
    prefix: str
    upstream: str
    audience: str
    timeout_s: float
    max_body_bytes: int
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Match:
    service: Service
    route: Route
    rest: str  # the path after the prefix, always starting with "/"

    @property
    def pattern(self) -> str:
        """The route as the audit log and metrics name it (never the concrete path)."""
        return self.service.prefix + self.route.path


def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")[1:]) if path != "/" else ("",)


def _match(pattern: tuple[str, ...], segments: list[str]) -> bool:
    for index, part in enumerate(pattern):
        if part == "**":
            return True
        if index >= len(segments):
            return False
        if part != "*" and part != segments[index]:
            return False
        if part == "*" and segments[index] == "":
            return False
    return len(segments) == len(pattern)


def _cors(raw: Any, source: str) -> cors.CorsPolicy | None:
    try:
        return cors.parse(raw, source)
    except (cors.CorsError, TypeError, ValueError) as exc:
        raise RouteTableError(str(exc)) from exc


def _route(raw: Any, source: str, default_cors: cors.CorsPolicy | None = None) -> Route:
    if not isinstance(raw, Mapping) or not set(raw) <= _ROUTE_KEYS or "path" not in raw:
        raise RouteTableError(f"{source}: a route is a mapping with keys from {sorted(_ROUTE_KEYS)}: {raw!r}")
    path = str(raw["path"])
    if not path.startswith("/") or "**" in path[:-2]:
        raise RouteTableError(f"{source}: path {path!r} must start with / and may end with /**")
    methods = {str(m).upper() for m in raw.get("methods") or sorted(FORWARDED_METHODS)}
    if "GET" in methods:
        methods.add("HEAD")  # RFC 9110 §9.3.2: HEAD is GET without the body
    methods = frozenset(methods)
    if not methods <= FORWARDED_METHODS:
        raise RouteTableError(f"{source}: unknown methods in {sorted(methods)}")
    auth = raw.get("auth", "token")
    if auth not in ("public", "token"):
        raise RouteTableError(f"{source}: auth must be public or token, not {auth!r}")
    scopes = tuple(str(s) for s in raw.get("scopes") or ())
    if scopes and auth == "public":
        raise RouteTableError(f"{source}: a public route cannot require scopes ({path})")
    return Route(path=path, methods=methods, auth=auth, scopes=scopes,
                 rate_limit=str(raw.get("rate_limit") or "default"), redact=bool(raw.get("redact", False)),
                 segments=_split(path), cors=_cors(raw["cors"], source) if "cors" in raw else default_cors)


def _default_route(default_cors: cors.CorsPolicy | None = None) -> Route:
    return Route(path="/**", methods=FORWARDED_METHODS, segments=("**",), cors=default_cors)


def service_from_mapping(name: str, raw: Any, *, default_timeout: float, default_max_body: int,
                         source: str = "<mapping>") -> Service:
    """:raise RouteTableError: unknown keys, bad paths, methods or auth values."""
    if not isinstance(raw, Mapping) or not set(raw) <= _SERVICE_KEYS:
        raise RouteTableError(f"{source}: top-level keys must be from {sorted(_SERVICE_KEYS)}")
    prefix = str(raw.get("prefix") or f"/{name}").rstrip("/")
    if not prefix.startswith("/") or prefix.count("/") != 1:
        raise RouteTableError(f"{source}: prefix must be one segment such as /{name}, not {prefix!r}")
    service_cors = _cors(raw.get("cors"), source)
    routes = tuple(_route(item, source, service_cors) for item in raw.get("routes") or ())
    return Service(name=name, prefix=prefix, upstream=str(raw.get("upstream") or name),
                   audience=str(raw.get("audience") or f"xsn:{name}"),
                   timeout_s=float(raw.get("timeout_s") or default_timeout),
                   max_body_bytes=int(raw.get("max_body_bytes") or default_max_body),
                   routes=routes + (_default_route(service_cors),))


def default_service(name: str, *, default_timeout: float, default_max_body: int) -> Service:
    routes = [{"path": p, "methods": ["GET", "HEAD"], "auth": "public"} for p in DEFAULT_PUBLIC]
    return service_from_mapping(name, {"routes": routes}, default_timeout=default_timeout,
                                default_max_body=default_max_body, source=f"<default {name}>")


class RouteTable:
    def __init__(self, services: Iterable[Service]) -> None:
        self.services: dict[str, Service] = {}
        for service in services:
            if service.prefix in self.services:
                raise RouteTableError(f"two services claim the prefix {service.prefix}")
            self.services[service.prefix] = service

    @classmethod
    def load(cls, directory: Path = ROUTES_DIR, *, services: Iterable[str] = (), default_timeout: float = 30.0,
             default_max_body: int = 1024 * 1024) -> RouteTable:
        """Every ``<service>.yaml`` in ``directory``, plus defaults for ``services`` without one.

        :raise RouteTableError: a file is malformed or two files claim one prefix.
        """
        loaded: dict[str, Service] = {}
        for path in sorted(directory.glob("*.yaml")):
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise RouteTableError(f"{path}: {exc}") from exc
            loaded[path.stem] = service_from_mapping(path.stem, raw, default_timeout=default_timeout,
                                                     default_max_body=default_max_body, source=str(path))
        for name in services:
            if name not in loaded:
                loaded[name] = default_service(name, default_timeout=default_timeout,
                                               default_max_body=default_max_body)
        return cls(loaded.values())

    def upstreams(self) -> set[str]:
        return {service.upstream for service in self.services.values()}

    def service_for(self, path: str) -> tuple[Service, str] | None:
        """The service whose prefix ``path`` is under, and the rest of the path (``/...``)."""
        slash = path.find("/", 1)
        prefix, rest = (path, "/") if slash < 0 else (path[:slash], path[slash:])
        service = self.services.get(prefix)
        return (service, rest) if service is not None else None

    def match(self, path: str, method: str) -> Match | None:
        """The first route of the path's service whose path and method match, or ``None`` (no
        service has that prefix). ``path`` must already be checked by ``paths.check_path``.

        :raise MethodNotAllowed: listed routes match the path, none of them the method.
        """
        found = self.service_for(path)
        if found is None:
            return None
        service, rest = found
        segments = rest.split("/")[1:]
        *listed, default = service.routes
        allowed: set[str] = set()
        for route in listed:
            if _match(route.segments, segments):
                if method in route.methods:
                    return Match(service, route, rest)
                allowed |= route.methods
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here", headers={"Allow": ", ".join(sorted(allowed))})
        return Match(service, default, rest)
