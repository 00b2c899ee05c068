"""Where the gateway hands each request's audit record: the ``AuditSink`` interface.

The durable implementation (an fsync'd spool moved into the tamper-evident log) is the
audit log's (``gateway/audit/``); the gateway only needs ``record()``: awaited once per
request before the response completes. If it raises, the request is answered 503
``audit_unavailable`` and the gateway forwards nothing until a record is written again.

A record holds: ``time`` (RFC 3339 UTC), ``request_id``, ``client_id``, ``subject``,
``acr``, ``source`` (the client address), ``method``, ``route`` (the route pattern),
``path`` (no query string; the pattern for routes marked ``redact``), ``status``,
``latency_ms``, ``bytes_in``, ``bytes_out``, ``outcome`` (``ok|denied|error|rejected``),
``reason`` (a stable code), ``upstream``. Never bodies, tokens or query strings.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, Protocol


class AuditSink(Protocol):
    async def record(self, record: dict[str, Any]) -> None:
        """Keep ``record`` durably, or raise."""

    # Optional: ``status() -> {"ready": bool, ...}`` for /readyz, ``async close()`` on shutdown.


class MemoryAuditSink:
    """Records in a list: for tests, and to make a failing sink (``fail = True``)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = False

    async def record(self, record: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("audit sink failing (test)")
        self.records.append(record)


WRITER_STALE_S = 10.0  # a writer that has not reported for this long is taken as stopped


class DurableAuditSink:
    """The audit log's spool on this process's disk, fsync'd before each response completes; the
    writer process (``python -m gateway.audit_writer``) moves it into the tamper-evident log.

    ``worker`` names this edge process among its siblings (``0``, ``1``, ... by fork index), so a
    restarted process reopens its own spool and the records it left there still reach the log.
    """

    def __init__(self, config: dict[str, Any], worker: str) -> None:
        from gateway.audit.config import setting, spool_dir
        from gateway.audit.spool import AuditSpool

        self.spool = AuditSpool(spool_dir(config, worker),
                                max_backlog_bytes=int(setting(config, "AUDIT_SPOOL_MAX_BYTES")),
                                segment_bytes=int(setting(config, "AUDIT_SPOOL_SEGMENT_BYTES")),
                                group_window=float(setting(config, "AUDIT_SPOOL_GROUP_WINDOW_MS")) / 1000,
                                sync_interval=float(setting(config, "AUDIT_SPOOL_SYNC_INTERVAL_MS")) / 1000)

    async def record(self, record: dict[str, Any]) -> None:
        await self.spool.record(record)  # AuditUnavailable: the edge answers 503

    def status(self) -> dict[str, Any]:
        """For ``/readyz``: ready while the spool's writer process reports passes without errors."""
        writer = self.spool.shared.writer()
        alive = writer["age_s"] is not None and writer["age_s"] < WRITER_STALE_S
        return {"ready": alive and writer["error"] is None, "backlog_bytes": self.spool.backlog_bytes,
                "moved": writer["moved"], "writer_error": writer["error"] if alive else "no writer process",
                "writer_age_s": writer["age_s"], **self.spool.stats()}

    async def close(self) -> None:
        await asyncio.to_thread(self.spool.close)  # waits for the sync thread's last fsync: off the loop


def load_sink(config: dict[str, Any], *, worker: str = "0") -> AuditSink:
    """The sink ``GATEWAY_AUDIT_SINK`` names: ``audit`` (the durable audit log, the default),
    ``memory`` (unit tests), or ``package.module:factory`` called with the configuration and
    ``worker=``."""
    spec = str(config.get("GATEWAY_AUDIT_SINK") or "audit")
    if spec == "memory":
        return MemoryAuditSink()
    if spec == "audit":
        return DurableAuditSink(config, worker)
    module, _, factory = spec.partition(":")
    return getattr(importlib.import_module(module), factory or "create_sink")(config, worker=worker)
