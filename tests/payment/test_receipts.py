"""Fiscal e-receipts: written with the payment, sealed in batches per department, verifiable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import rfc8785

from common.crypto.gm import sm3
from common.errors import NotFound
from payment import payments, receipts
from payment.models import Receipt


@dataclass
class Signature:
    signature_b64: str


class RecordingSealer:
    """Stands in for the seal node's client: records each batch, returns one signature per digest."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[tuple[str, str]], str]] = []

    def seal_for(self, org_code: str, kind: str) -> str:
        return f"seal-{org_code}-{kind}"

    def sign_batch(self, seal_id, items, *, idempotency_key):
        self.batches.append((seal_id, items, idempotency_key))
        return [Signature(f"sig-of-{digest[:8]}") for digest, _info in items]


def _pay(session, issue):
    notice = issue()
    order = payments.start_payment(session, notice, "wechat", actor="payer")
    session.commit()
    payments.confirm_payment(session, order.id, channel="wechat", channel_transaction_id=f"WX-{order.id[:6]}",
                             amount=order.amount, paid_at=datetime.now(UTC), actor="callback")
    session.commit()
    return notice


def test_a_paid_notice_gets_a_receipt_whose_digest_anyone_can_recompute(session, issue):
    notice = _pay(session, issue)
    receipt = session.query(Receipt).one()
    fields = json.loads(receipt.document)
    assert (fields["PaymentCode"], fields["TotalAmount"], fields["PayerPartyName"]) == (notice.payment_code, 4550,
                                                                                          "张三")
    assert "11010519491231002X" not in receipt.document  # only the masked payer id
    assert receipt.document == rfc8785.dumps(fields).decode()
    assert receipt.digest == sm3(receipt.document.encode()).hex()
    assert len(receipt.check_code) == 6 and receipt.status == "pending_seal"


def test_pending_receipts_are_sealed_in_one_batch_per_department_and_numbered_in_order(session, issue):
    for _ in range(3):
        _pay(session, issue)
    sealer = RecordingSealer()
    assert receipts.seal_pending(session, sealer) == 3
    assert len(sealer.batches) == 1 and sealer.batches[0][0].endswith("-finance")
    rows = session.query(Receipt).order_by(Receipt.number).all()
    assert [r.number for r in rows] == ["0000000001", "0000000002", "0000000003"]
    assert all(r.status == "sealed" and r.signature.startswith("sig-of-") for r in rows)
    assert receipts.seal_pending(session, sealer) == 0


def test_a_receipt_is_found_by_code_number_and_check_code_only(session, issue):
    _pay(session, issue)
    receipt = session.query(Receipt).one()
    assert receipts.find_receipt(session, receipt.code, receipt.number, receipt.check_code).id == receipt.id
    wrong = f"{(int(receipt.check_code) + 1) % 10**6:06d}"
    with pytest.raises(NotFound):
        receipts.find_receipt(session, receipt.code, receipt.number, wrong)


def test_the_verify_api_answers_without_a_token(client, session, issue):
    _pay(session, issue)
    receipt = session.query(Receipt).one()
    answer = client.get(f"/receipts/verify?code={receipt.code}&number={receipt.number}&check_code={receipt.check_code}")
    assert answer.status_code == 200 and answer.get_json()["document"]["TotalAmount"] == 4550
    bad = client.get(f"/receipts/verify?code={receipt.code}&number={receipt.number}&check_code=12345")
    assert bad.status_code == 422 and bad.content_type == "application/problem+json"


def test_the_receipt_page_shows_the_receipt_and_the_seals_verdict(client, session, issue, app):
    _pay(session, issue)
    receipt = session.query(Receipt).one()
    query = f"code={receipt.code}&number={receipt.number}&check_code={receipt.check_code}"
    pending = client.get(f"/cashier/receipt?{query}")
    assert pending.status_code == 200 and "加盖中" in pending.text
    assert receipts.seal_pending(session, app.extensions["payment_sealer"]) == 1  # real SM2, in memory
    sealed = client.get(f"/cashier/receipt?{query}")
    assert sealed.status_code == 200 and 'data-valid="true"' in sealed.text and "营业执照副本补领工本费" in sealed.text
    assert "合计：<strong>" in sealed.text and "应缴" not in sealed.text  # a receipt states what was paid
    other = f"{(int(receipt.check_code) + 1) % 10**6:06d}"
    wrong = client.get(f"/cashier/receipt?code={receipt.code}&number={receipt.number}&check_code={other}")
    assert wrong.status_code == 404 and "未找到" in wrong.text
