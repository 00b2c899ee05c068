"""What the audit spool costs a request: group commit against an fsync per record, and the writer's rate.

Run from the repository root::

    python -m bench.audit_spool [--records 4000] [--concurrency 64] [--dir var/bench-audit-spool]

The spool directory must be on the disk the edge would use (a tmpfs makes fsync free and the
figures meaningless). Measured, in one run: one caller at a time (each record waits for its own
fsync: the latency an idle edge adds), ``--concurrency`` callers with ``max_batch=1`` (fsync per
record), the same callers with group commit (the records arriving during one fsync share the
next; and with 16 callers, as one edge process has at bench.gateway's 32 connections), and the
writer moving the spooled records (with the edge's random request ids) into a SQLite audit log
(FULL sync, as shipped) in batches of 500 and of 20. CPU per record is this process's (the
fsync's kernel time included).
Ends with ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.result import print_result
from common.request_ids import new_request_id
from gateway.audit.spool import AuditSpool

RECORD = {"time": "2026-12-01T10:00:00.123456+00:00", "request_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
          "client_id": "xian-demo-app", "subject": "3f2a9c1e-5d4b-4c3a-9e8f-7a6b5c4d3e2f", "acr": "urn:xsn:acr:L2",
          "source": "203.0.113.7", "method": "GET", "route": "/licenses/licenses/*",
          "path": "/licenses/licenses/6101xxxx", "status": 200, "latency_ms": 3.2, "bytes_in": 0, "bytes_out": 512,
          "outcome": "ok", "reason": None, "upstream": "licenses"}


def _run(directory: Path, records: int, concurrency: int, **options) -> dict[str, float]:
    shutil.rmtree(directory, ignore_errors=True)
    spool = AuditSpool(directory, max_backlog_bytes=1 << 30, **options)
    latencies: list[float] = []

    async def caller(count: int) -> None:
        for i in range(count):
            started = time.perf_counter()
            await spool.record({**RECORD, "request_id": f"{i:032x}"})
            latencies.append(time.perf_counter() - started)

    async def main() -> None:
        per = records // concurrency
        await asyncio.gather(*(caller(per) for _ in range(concurrency)))

    started, cpu_started = time.perf_counter(), time.process_time()
    asyncio.run(main())
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    fsyncs = spool.fsyncs
    spool.close()
    latencies.sort()
    done = len(latencies)
    return {"records_per_s": round(done / elapsed), "us_per_record": round(elapsed / done * 1e6, 1),
            "cpu_us_per_record": round(cpu / done * 1e6, 1), "fsyncs": fsyncs,
            "records_per_fsync": round(done / max(1, fsyncs), 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(latencies[int(done * 0.99) - 1] * 1000, 3)}


def _writer(directory: Path, records: int, batch: int = 500) -> dict[str, float]:
    """Spool ``records``, then time the writer moving them into a migrated SQLite database."""
    from common.db import Database
    from common.ops.migrate import upgrade
    from gateway.audit.writer import AuditWriter

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    url = f"sqlite:///{directory / 'gateway.db'}"
    upgrade("gateway", url)
    spool = AuditSpool(directory / "spool", max_backlog_bytes=1 << 30)

    async def fill() -> None:
        # The edge's own request ids (random): their index takes each at a random place, as the
        # writer's does behind a real edge.
        await asyncio.gather(*(spool.record({**RECORD, "request_id": new_request_id()}) for _ in range(records)))

    asyncio.run(fill())
    from gateway.audit.spool.reader import SpoolReader

    database = Database(url)
    writer = AuditWriter(SpoolReader(directory / "spool"), database, batch=batch)
    # The filling's garbage collected now, not charged to the writer: left, the collector's passes
    # during the drain cost 4-5 µs per record more than a writer process pays.
    gc.collect()
    started, cpu_started = time.perf_counter(), time.process_time()
    moved = writer.drain()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    writer.spool.close()
    spool.close()
    database.dispose()
    return {"records_per_s": round(moved / elapsed), "us_per_record": round(elapsed / moved * 1e6, 1),
            "cpu_us_per_record": round(cpu / moved * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None, help="where to spool (default: a fresh dir under ./var)")
    args = parser.parse_args()
    Path("var").mkdir(exist_ok=True)
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-audit-spool-", dir="var"))
    try:
        sequential = _run(base / "one", min(args.records, 500), 1)
        per_record = _run(base / "per-record", args.records, args.concurrency, max_batch=1)
        grouped = _run(base / "grouped", args.records, args.concurrency)
        edge_like = _run(base / "edge-like", args.records, 16)  # a bench.gateway edge process's callers
        writer = _writer(base / "writer", args.records)
        writer_small = _writer(base / "writer-20", min(args.records, 2000), batch=20)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    for name, figures in (("one caller (fsync each)", sequential), ("fsync per record", per_record),
                          ("group commit", grouped), ("group commit, 16 callers", edge_like),
                          ("writer, batches of 500", writer), ("writer, batches of 20", writer_small)):
        print(f"{name:<26} " + "  ".join(f"{k}={v}" for k, v in figures.items()))
    print_result({"concurrency": args.concurrency, "sequential": sequential, "fsync_per_record": per_record,
                  "group_commit": grouped, "group_speedup": round(grouped["records_per_s"]
                                                                  / max(1, per_record["records_per_s"]), 1),
                  "group_commit_16_callers": edge_like, "writer": writer, "writer_batch_20": writer_small})


if __name__ == "__main__":
    main()
