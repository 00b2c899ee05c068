"""Demo data of the payment node (idempotent): the demo department's fee catalogue and the
ledger accounts of every channel and fee."""

from __future__ import annotations

import structlog
from flask import Flask

from common.db import get_db
from payment import postings
from payment.models import Fee

log = structlog.get_logger("xsn.payment.seed")

# A few fees of 西安市市场监督管理局 (the demo department of PAYMENT_DEPARTMENTS), in fen.
DEMO_FEES = [
    {"code": "MKT-001", "name": "营业执照副本补领工本费", "unit_amount": 1000},
    {"code": "MKT-002", "name": "食品经营许可证变更登记费", "unit_amount": 5000},
    {"code": "MKT-003", "name": "计量器具检定费", "unit_amount": None},
]


def seed(app: Flask) -> None:
    department = app.config["PAYMENT_DEPARTMENTS"]["xsn-dept-market"]
    with get_db(app).session() as session:
        postings.open_core_accounts(session, list(app.config["PAYMENT_CHANNELS"]))
        for spec in DEMO_FEES:
            fee = session.get(Fee, spec["code"])
            if fee is None:
                fee = Fee(**spec, department_code=department["code"], department_name=department["name"], active=True)
                session.add(fee)
                session.flush()
            postings.open_fee_accounts(session, fee)
        session.commit()
    log.info("payment_seeded", fees=len(DEMO_FEES))
