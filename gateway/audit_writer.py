"""``python -m gateway.audit_writer``: the audit writer processes, one per edge spool.

The edge (``python -m gateway.edge --workers N``) only appends each request's record to its
spool ``<AUDIT_SPOOL_DIR>/<index>``; this moves them into the Merkle log in the gateway's
database. One process per spool directory: ``--workers N`` (default ``GATEWAY_WORKERS``, as
the edge) forks one for each of ``0`` … ``N-1`` and for any other spool found under the
directory (a spool left by a run with more edge processes still reaches the log). A writer
that is killed loses nothing: its position is saved with the records it moved, and a new one
resumes from there. If one child dies, the others are stopped and this exits non-zero, so the
supervisor (``xsn run``'s launcher, compose, Kubernetes) restarts the set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

import structlog

log = structlog.get_logger("xsn.gateway.audit.writer")


def spool_names(config: dict, workers: int) -> list[str]:
    """``0`` … ``workers - 1`` and every spool already under the spool directory."""
    from gateway.audit.config import spool_dir

    names = {str(i) for i in range(workers)}
    base = spool_dir(config, "0").parent
    if base.is_dir():
        names.update(p.name for p in base.iterdir() if (p / "spool.id").exists())
    return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))


def run_one(config: dict, worker: str) -> int:
    from gateway.audit.writer import open_writer

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        writer = open_writer(config, worker=worker)
    except RuntimeError as exc:  # another writer holds this spool
        log.error("audit_writer_not_started", spool=worker, error_type=type(exc).__name__)
        return 1
    log.info("audit_writer_started", spool=str(writer.spool.directory), pid=os.getpid())
    try:
        writer.run(stop)
    finally:
        writer.spool.close()
        writer.database.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    from common.web.logging import configure_logging
    from gateway.config import load_config

    parser = argparse.ArgumentParser(prog="python -m gateway.audit_writer")
    parser.add_argument("--workers", type=int, default=None, help="edge processes (default GATEWAY_WORKERS)")
    parser.add_argument("--spool", default=None, help="only this spool (an edge process's name: 0, 1, ...)")
    args = parser.parse_args(argv)
    config = load_config()
    configure_logging(config.get("LOG_LEVEL", "INFO"))
    names = [args.spool] if args.spool else spool_names(config, args.workers or int(config["GATEWAY_WORKERS"]))
    if len(names) == 1:
        return run_one(config, names[0])
    children: dict[int, str] = {}
    for name in names:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_one(config, name)
            finally:
                os._exit(code)
        children[pid] = name
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        name = children.pop(pid, None)
        if name is not None and not stopping:
            log.error("audit_writer_exited", spool=name, status=status)
            code = 1
            forward(signal.SIGTERM, None)
    return code


if __name__ == "__main__":
    sys.exit(main())
