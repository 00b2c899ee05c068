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
import json
import os
from pathlib import Path
from typing import Any, Protocol


class AuditSink(Protocol):
    async def record(self, record: dict[str, Any]) -> None:
        """Keep ``record`` durably, or raise."""


class MemoryAuditSink:
    """Records in a list: for tests, and to make a failing sink (``fail = True``)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = False

    async def record(self, record: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("audit sink failing (test)")
        self.records.append(record)


class JsonLinesAuditSink:
    """One JSON line per record, appended to a file and flushed (not fsync'd).

    A stand-in until the audit log's spool is configured (``GATEWAY_AUDIT_SINK``): it keeps
    records across a gateway crash but not across a power loss.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - held open for the process

    async def record(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

    async def close(self) -> None:
        await asyncio.to_thread(self.handle.close)


def load_sink(config: dict[str, Any]) -> AuditSink:
    """The sink ``GATEWAY_AUDIT_SINK`` names: ``memory``, ``jsonl`` (file under var/, the
    embedded default), or ``package.module:factory`` called with the gateway's configuration."""
    spec = str(config.get("GATEWAY_AUDIT_SINK") or "jsonl")
    if spec == "memory":
        return MemoryAuditSink()
    if spec == "jsonl":
        return JsonLinesAuditSink(Path(config["VAR_DIR"]) / "run" / f"gateway-audit-{os.getpid()}.jsonl")
    module, _, factory = spec.partition(":")
    return getattr(importlib.import_module(module), factory or "create_sink")(config)
