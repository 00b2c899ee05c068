"""How the licences node's own gunicorn serves it under ``xsn run`` (no extra processes)."""

from __future__ import annotations

# Threaded workers with 16 threads: an online verification holds its thread while its use
# record commits (a WAL flush, milliseconds on a shared disk), so with 4 threads a worker sat
# waiting on PostgreSQL with CPU to spare, and the verifications a worker commits at once are
# also the ones PostgreSQL can flush together. Measured (docs/ARCHITECTURE.md, licences:
# "Threads"): 2 workers x 16 against x 4, same minutes, wrk -c32, verifications/s +40-50 %,
# server CPU per verification lower, WAL flushes per verification ~0.4 against ~0.7. The
# verification pool opens a connection per request being verified, up to
# LICENSES_VERIFY_POOL_SIZE, whose default is this number (licenses.config: a thread count set
# another way, XSN_LICENSES_GUNICORN_THREADS or gunicorn --threads, needs
# XSN_LICENSES_VERIFY_POOL_SIZE set to match); the other views wait for the database pool (common.db:
# 5 + 10 per process) rather than a thread. Read by common.ops.launcher (service_concurrency).
GUNICORN_THREADS = 16


def processes(suite) -> dict[str, list[str]]:
    return {}
