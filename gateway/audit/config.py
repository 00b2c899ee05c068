"""Settings of the audit log (every key has its default here; ``XSN_<KEY>`` overrides)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SETTINGS: dict[str, Any] = {
    # The edge's spool directory; empty = <VAR_DIR>/audit-spool. Each edge process uses its own
    # sub-directory (its worker name), locked with flock while it runs.
    "AUDIT_SPOOL_DIR": "",
    "AUDIT_SPOOL_MAX_BYTES": 64 * 1024 * 1024,  # backlog not yet in the database: past it, 503
    "AUDIT_SPOOL_SEGMENT_BYTES": 16 * 1024 * 1024,
    "AUDIT_SPOOL_GROUP_WINDOW_MS": 0.0,  # extra wait before an fsync to gather records (0: none)
    # Under load (fsyncs carrying several records), at most one fsync per this many ms: bigger
    # groups, less CPU per record; a lone request still waits for nobody (0: off). See spool.py.
    "AUDIT_SPOOL_SYNC_INTERVAL_MS": 2.0,
    "AUDIT_WRITER_BATCH": 500,  # records per database transaction at most
    # Seconds the writer waits after a pass that found less than a batch. Longer = bigger batches,
    # less writer CPU per record. Measured 2026-12-07, CPU µs per record by records a transaction:
    #   records a transaction         5    20   100   500
    #   SQLite: writer process      236    95    41    33
    #   PostgreSQL: writer process  287    90    31    21-23
    #   PostgreSQL: its backend     168    53    20    15-18
    # (at 500 on PostgreSQL, the range over these runs and RowsInsert's A/B runs,
    # common/merkle_log/driver.py). Records reach the database within about this long. The
    # backlog bound (AUDIT_SPOOL_MAX_BYTES) is what protects the edge, not this.
    "AUDIT_WRITER_INTERVAL": 0.5,
    "AUDIT_CHECKPOINT_INTERVAL": 5,  # seconds: a grown log gets a new signed checkpoint at most this stale
    "AUDIT_LOG_ORIGIN": "xsn.xian/gateway-audit-log",  # checkpoint origin and signed-note key name
    "AUDIT_RETENTION_DAYS": 180,  # GB/T 22239 level 3 asks for at least 6 months
    "AUDIT_ARCHIVE_DIR": "",  # empty = <VAR_DIR>/audit-archive
    # The auditor console reads the seal signature log over seal's auditor API with this
    # client-credentials client (the secret: from var/clients.json in the embedded run).
    "AUDIT_SEAL_CLIENT_ID": "xsn-auditor",
    "AUDIT_SEAL_CLIENT_SECRET": None,
}
MIN_RETENTION_DAYS = 180


def spool_dir(config: Mapping[str, Any], worker: str = "0") -> Path:
    base = config.get("AUDIT_SPOOL_DIR") or Path(config["VAR_DIR"]) / "audit-spool"
    return Path(base) / worker


def archive_dir(config: Mapping[str, Any]) -> Path:
    return Path(config.get("AUDIT_ARCHIVE_DIR") or Path(config["VAR_DIR"]) / "audit-archive")


def setting(config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key)
    return SETTINGS[key] if value is None or value == "" else value
