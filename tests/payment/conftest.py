"""Fixtures of the payment tests: a seeded app trusting tests/conftest.py's ``tokens``, a session, a notice
maker."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from common.crypto.pii import PiiCipher
from common.db import get_db
from payment import notices
from payment.seed import seed

DEPARTMENT_CLIENT = "xsn-dept-market"
PERSON_ID = "11010519491231002X"


@pytest.fixture
def app(make_app, tokens):
    app = make_app("payment", PAYMENT_SEAL_CLIENT="memory", PAYMENT_NOTIFIER="memory")
    tokens.install(app)
    seed(app)
    return app


@pytest.fixture
def session(app):
    with app.app_context(), get_db(app).session() as session:
        yield session


def open_test_accounts(session, *, clearing_holds: int = 0) -> None:
    """The three accounts the ledger tests share: a channel receivable (credits never exceed
    debits), a payer clearing account (debits never exceed credits) and a revenue account;
    ``clearing_holds`` fen paid into clearing by one transfer, ``seed``."""
    from payment.ledger.transfers import AccountSpec, TransferSpec, create_transfer, open_account

    open_account(session, AccountSpec("bank", "channel_receivable", "bank", credits_must_not_exceed_debits=True))
    open_account(session, AccountSpec("clearing", "payer_clearing", "clearing", debits_must_not_exceed_credits=True))
    open_account(session, AccountSpec("revenue", "department_revenue", "revenue"))
    if clearing_holds:
        create_transfer(session, TransferSpec("seed", "bank", "clearing", clearing_holds, "payment"))
    session.commit()


@pytest.fixture
def department(app):
    entry = app.config["PAYMENT_DEPARTMENTS"][DEPARTMENT_CLIENT]
    return entry["code"], entry["name"]


@pytest.fixture
def collector(tokens):
    return tokens.bearer(sub=DEPARTMENT_CLIENT, scope="payment:collect", aud="xsn:payment",
                         client_id=DEPARTMENT_CLIENT)


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher.from_kek(bytes(16), "payment")


def notice_request(**overrides) -> notices.NoticeRequest:
    fields = {"payer_kind": "person", "payer_name": "张三", "payer_id": PERSON_ID,
              "items": (notices.ItemRequest("MKT-001", 2), notices.ItemRequest("MKT-003", 1, 2550)),
              "total_amount": 4550, "due_date": date.today() + timedelta(days=15), "case_reference": "BJ-2026-0001"}
    fields.update(overrides)
    return notices.NoticeRequest(**fields)


@pytest.fixture
def issue(session, cipher, department):
    def issue_(key: str | None = None, **overrides):
        notice, _created = notices.issue_notice(session, cipher, notice_request(**overrides),
                                                department_code=department[0], department_name=department[1],
                                                actor="client:test", idempotency_key=key, today=date.today())
        session.commit()
        return notice

    return issue_
