"""What the payment node adds to ``xsn run``: the channel simulator (the payment institutions),
and how its own gunicorn serves it."""

from __future__ import annotations

import sys

PORTS = {"channel-sim": 8009}

# Threaded workers: the ``POST /ledger/transfers`` requests one process serves at once share one
# transaction and one commit (payment.ledger.group_commit); a sync worker serves one request at
# a time, so each would wait for its own WAL flush. 32 threads per worker: a transfer request
# spends most of its time waiting for its group's commit, holding its thread; with 16 the
# server sat idle while every thread waited (measured, docs/ARCHITECTURE.md payment: CPU ratio
# 0.38 -> 0.44, /livez no dearer). The other views wait for the database pool (common.db:
# 5 + 10 per process) rather than a thread beyond that. Read by common.ops.launcher
# (service_concurrency), which serves every service with gthread workers.
GUNICORN_THREADS = 32


def processes(suite) -> dict[str, list[str]]:
    return {"channel-sim": [sys.executable, "-m", "common.ops.cli", "payment", "channel-sim",
                            "--port", str(suite.ports["channel-sim"])]}


def env(suite) -> dict[str, str]:
    return {"XSN_PAYMENT_CHANNEL_SIM_URL": f"http://127.0.0.1:{suite.ports['channel-sim']}"}


def summary(suite) -> list[str]:
    return ["", f"Payment channel simulator (微信支付 / 支付宝 / 银行, simulated): "
                f"http://127.0.0.1:{suite.ports['channel-sim']}",
            "Cashier (收银台): http://127.0.0.1:8000/payment/cashier"]
