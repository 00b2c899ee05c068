"""Concurrent appends: every index 0..n-1 exactly once, and the stored tree equals a rebuild.

The thread test runs on whatever database the suite uses (SQLite by default, PostgreSQL under
XSN_TEST_DATABASE_URL); the process test needs PostgreSQL (several gunicorn workers' worth of
independent connections and processes).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import select

from common.crypto import merkle
from common.crypto.gm import SM2PrivateKey
from common.db import get_db
from seal.log import appends, checkpoints, proofs, tree
from seal.log.models import LogCheckpoint, LogEntry, LogNode

ROOT = Path(__file__).resolve().parents[3]
WORKER = """
import sys
from sqlalchemy.orm import sessionmaker
from common.db import make_engine
import seal.models  # registers the log tables too
from seal.log import appends
url, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = make_engine(url)
Session = sessionmaker(engine)
for i in range(count):
    with Session() as session:
        appends.append_event(session, {"type": "sign", "time": "2026-07-01T00:00:00Z", "request_id": f"{worker}-{i}"})
        session.commit()
print("done")
"""


def check_log(app, expected: int) -> None:
    with get_db(app).session() as session:
        rows = session.execute(select(LogEntry.leaf_index, LogEntry.leaf).order_by(LogEntry.leaf_index)).all()
        assert [r.leaf_index for r in rows] == list(range(expected))
        assert tree.log_size(session) == expected
        assert len({r.leaf for r in rows}) == expected  # every event once (request ids differ)
        memory = merkle.MemoryTree()
        for row in rows:
            memory.append(row.leaf.encode())
        stored = {(lvl, idx): bytes(h) for lvl, idx, h in session.execute(
            select(LogNode.level, LogNode.index, LogNode.hash))}
        assert stored == memory._nodes
        assert proofs.root_hash(session, expected) == memory.root()
        for checkpoint in session.scalars(select(LogCheckpoint)):
            assert bytes(checkpoint.root_hash) == memory.root(checkpoint.tree_size)


def test_threads_append_concurrently(make_app):
    app = make_app("seal")
    threads, per_thread = 8, 15
    signer = checkpoints.LogSigner(origin="xsn.test/seal-log", key_id="k", private_key=SM2PrivateKey.generate())
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def append(worker: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with get_db(app).session() as session:
                    appends.append_event(session, {"type": "sign", "time": "2026-07-01T00:00:00Z",
                                               "request_id": f"t{worker}-{i}"})
                    if i == 3 and worker % 2:
                        session.rollback()  # an abandoned signing request must not leave a gap
                        continue
                    session.commit()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def publish() -> None:
        try:
            start.wait()
            for _ in range(10):
                with get_db(app).session() as session:
                    checkpoints.publish_checkpoint(session, signer)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=append, args=(w,)) for w in range(threads)]
    pool.append(threading.Thread(target=publish))
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    assert not errors, errors
    check_log(app, threads * per_thread - threads // 2)


def test_processes_append_concurrently_on_postgresql(make_app, postgres_url):
    app = make_app("seal")
    url = app.config["DATABASE_URL"]
    assert url.startswith("postgresql"), "make_app builds on XSN_TEST_DATABASE_URL"
    workers, per_worker = 4, 25
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, f"p{w}", str(per_worker)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(workers)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    check_log(app, workers * per_worker)
