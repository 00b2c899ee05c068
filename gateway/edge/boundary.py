"""The trusted boundary (BRIEF contract 1): which host, which client, which headers go on.

The gateway is the one hop the services trust (they run ``PROXY_HOPS=1``), so everything a
service learns about the caller and the connection comes from here: forwarding headers
from clients are dropped and set again from the connection (or from a configured list of
trusted front proxies, counted), caller headers (``X-XSN-*``) are dropped and set only from
a verified token, and hosts the gateway is not configured for are refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.edge.problems import UnknownHost

# RFC 9110 §7.6.1 connection-specific fields, plus what the gateway sets itself.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"})
# Set by the gateway only; from a client they are dropped (lowercase).
GATEWAY_SET = frozenset({"host", "content-length", "forwarded", "x-forwarded-for", "x-forwarded-proto",
                         "x-forwarded-host", "x-forwarded-prefix", "x-forwarded-port", "x-real-ip",
                         "x-request-id", "expect"})
CALLER_PREFIX = "x-xsn-"
_NOT_FORWARDED = HOP_BY_HOP | GATEWAY_SET
_NOT_RETURNED = HOP_BY_HOP | {"content-length", "x-request-id"}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def connection_named(values: Iterable[str]) -> set[str]:
    """Field names listed in ``Connection`` headers: hop-by-hop too (RFC 9110 §7.6.1)."""
    if not values:  # the usual case (a list or tuple), without building a set
        return set()
    return {name.strip().lower() for value in values for name in value.split(",") if name.strip()}


def _host_key(host: str, default_port: int) -> str:
    host = host.strip().lower().rstrip(".")
    if host.endswith(f":{default_port}") and not host.endswith("]"):
        host = host[: -len(f":{default_port}")]
    return host


@dataclass(frozen=True)
class Boundary:
    public_scheme: str
    public_host: str  # host[:port] as the public base URL names it
    allowed_hosts: frozenset[str]
    trusted_proxies: tuple[Network, ...] = ()
    trusted_hops: int = 0

    @classmethod
    def from_settings(cls, public_base_url: str, *, extra_hosts: Iterable[str] = (), listen_port: int | None = None,
                      embedded: bool = False, trusted_proxies: Iterable[str] = (), trusted_hops: int = 0) -> Boundary:
        """``embedded`` also allows the loopback names of the listening port (``make run``)."""
        parts = urlsplit(public_base_url)
        scheme = parts.scheme or "http"
        default_port = 443 if scheme == "https" else 80
        hosts = {_host_key(parts.netloc, default_port)}
        hosts.update(_host_key(h, default_port) for h in extra_hosts if h.strip())
        if embedded and listen_port:
            hosts.update({f"127.0.0.1:{listen_port}", f"localhost:{listen_port}", f"[::1]:{listen_port}"})
        networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in trusted_proxies if n.strip())
        hops = trusted_hops if trusted_hops else (1 if networks else 0)
        return cls(public_scheme=scheme, public_host=parts.netloc, allowed_hosts=frozenset(hosts),
                   trusted_proxies=networks, trusted_hops=hops)

    def check_host(self, host: str | None) -> None:
        """:raise UnknownHost: no Host, or one this gateway does not serve (421, RFC 9110 §15.5.20)."""
        default_port = 443 if self.public_scheme == "https" else 80
        if not host or _host_key(host, default_port) not in self.allowed_hosts:
            raise UnknownHost("this gateway does not serve that host")

    def page_redirect(self, host: str, method: str, target: str, headers: Mapping[str, str]) -> str | None:
        """Where a browser's page request on an allowed host other than the public base URL's
        goes instead: the same ``target`` (path and query, as sent) there; ``None`` to serve it.

        The services build absolute URLs (an OAuth callback, a console's sign-in) from the
        public base URL (the gateway sets ``X-Forwarded-Host`` to it), never from the request,
        so a console opened at ``localhost:8000`` sets its sign-in cookie on ``localhost`` and
        is sent back to ``127.0.0.1:8000`` without it. Only GET/HEAD asking for HTML (``Accept``)
        without a token (``Authorization``) in ``headers`` are moved (a page): API clients may
        use any allowed name, and a redirect would drop their ``Authorization``. 307: not
        cached, as the public URL is configuration.
        """
        if host == self.public_host or method not in ("GET", "HEAD") or "Authorization" in headers \
                or "text/html" not in headers.get("Accept", ""):
            return None  # the public host as written (most requests): nothing else looked at
        default_port = 443 if self.public_scheme == "https" else 80
        if _host_key(host, default_port) == _host_key(self.public_host, default_port):
            return None
        if not target.startswith("/") or not target.isascii() or not target.isprintable():
            # An absolute-form target (``GET http://other/x``) or ``*``: appended to the public
            # host it would make a malformed Location; raw non-ASCII or control characters could
            # not be written into the header at all. Served or refused as any request is.
            return None
        return f"{self.public_scheme}://{self.public_host}{target}"

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)

    def client_address(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The real client: the peer, unless the peer is a trusted front proxy; then walk
        ``X-Forwarded-For`` from the right over at most ``trusted_hops`` trusted proxies.
        A client's own ``X-Forwarded-For`` entries (the leftmost) are never believed."""
        if not self.trusted_proxies or not self._trusted(peer):
            return peer
        chain = [a.strip() for value in forwarded_for for a in value.split(",") if a.strip()]
        client = peer
        for _ in range(self.trusted_hops):
            if not self._trusted(client) or not chain:
                break
            candidate = chain.pop()
            try:
                client = str(ipaddress.ip_address(candidate))
            except ValueError:
                break  # a malformed entry: stop at the last address we could trust
        return client


def upstream_headers(incoming: Iterable[tuple[str, str]], connection_values: Iterable[str]) -> list[tuple[str, str]]:
    """Client headers that may go on: no hop-by-hop, nothing the gateway sets, no ``X-XSN-*``."""
    named = connection_named(connection_values)
    dropped = _NOT_FORWARDED | named if named else _NOT_FORWARDED
    kept = []
    for name, value in incoming:
        lower = name.lower()
        if lower not in dropped and not lower.startswith(CALLER_PREFIX):
            kept.append((name, value))
    return kept


def forwarding_headers(*, client: str, boundary: Boundary, prefix: str, request_id: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", client), ("X-Forwarded-Proto", boundary.public_scheme),
            ("X-Forwarded-Host", boundary.public_host), ("X-Forwarded-Prefix", prefix),
            ("X-Request-ID", request_id)]


def caller_headers(claims: Mapping | None) -> list[tuple[str, str]]:
    """What the services learn about a verified caller; nothing for public routes."""
    if not claims:
        return []
    headers = [("X-XSN-Client-Id", str(claims.get("client_id", ""))), ("X-XSN-Subject", str(claims.get("sub", ""))),
               ("X-XSN-Scopes", str(claims.get("scope", "")) if isinstance(claims.get("scope"), str) else ""),
               ("X-XSN-Token-Id", str(claims.get("jti", "")))]
    if claims.get("acr"):
        headers.append(("X-XSN-ACR", str(claims["acr"])))
    return [(k, v) for k, v in headers if v and "\r" not in v and "\n" not in v]


def response_headers(incoming: Iterable[tuple[str, str]], connection_values: Iterable[str], *,
                     drop_prefix: str | None = None) -> list[tuple[str, str]]:
    """Upstream response headers that go back to the client (framing is the gateway's); also
    without those starting with ``drop_prefix`` (lowercase), in the same pass."""
    named = connection_named(connection_values)
    dropped = _NOT_RETURNED | named if named else _NOT_RETURNED
    if drop_prefix is None:
        return [(name, value) for name, value in incoming if name.lower() not in dropped]
    return [(name, value) for name, value in incoming
            if (lower := name.lower()) not in dropped and not lower.startswith(drop_prefix)]
