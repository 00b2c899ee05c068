"""What the gateway knows about one request while it answers it (``Exchange``), and the audit
record made from it: the request id, the caller, the route, the outcome and the sizes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

_second_stamp: tuple[int, str] = (0, "")


def utc_stamp(now: float) -> str:
    """RFC 3339 UTC with milliseconds (``2026-12-06T23:06:01.123Z``); the part up to the second
    is formatted once a second, not per record."""
    global _second_stamp
    second = int(now)
    if _second_stamp[0] != second:
        _second_stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_stamp[1]}.{int((now - second) * 1000):03d}Z"


@dataclass(slots=True)  # made and read on every request: slots make both cheaper
class Exchange:
    """What the audit record and the access metrics need about one request."""

    request_id: str
    source: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    route: str = "<unmatched>"
    upstream: str | None = None
    claims: dict[str, Any] | None = None
    status: int = 0
    outcome: str = "ok"
    reason: str = "ok"
    bytes_in: int = 0
    bytes_out: int = 0
    cors: dict[str, str] | None = None  # CORS headers for this answer (an allowed origin on a CORS route)

    def record(self) -> dict[str, Any]:
        claims = self.claims or {}
        return {"time": utc_stamp(time.time()),
                "request_id": self.request_id, "client_id": claims.get("client_id"), "subject": claims.get("sub"),
                "acr": claims.get("acr"), "source": self.source, "method": self.method, "route": self.route,
                "path": self.path, "status": self.status,
                "latency_ms": round((time.perf_counter() - self.started) * 1000, 3), "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "outcome": self.outcome, "reason": self.reason,
                "upstream": self.upstream}
