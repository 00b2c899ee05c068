"""How ``xsn run`` serves the seal node (``common.ops.launcher.service_concurrency``): no extra
processes, 16 threads per gthread worker.

Why 16: single signatures of one worker share a commit through its one committer
(``seal.signature_writer``), and a group can only gather the requests the worker holds at once;
with 4 threads a group carried ~1.9 signatures and the two workers' committers took turns on
the log head's lock, each holding it through its commit's WAL flush. Measured with
``bench.seal``'s 32 connections (shared machine, three alternating rounds of 6 s, docs/
ARCHITECTURE.md seal): 4 → 8 threads 130–173 → 217–290 signatures/s, 8 → 16 threads 232–280 →
261–394/s, CPU per signature no higher. A thread waiting for its group costs no CPU; the
request's read takes one of 8 autocommit connections for one statement
(``common.merkle_log.driver.READ_POOL_SIZE``), and other views use the app's pool
(``common.db``: 5 + 10 per process).
"""

from __future__ import annotations

GUNICORN_THREADS = 16


def processes(suite) -> dict[str, list[str]]:
    return {}
