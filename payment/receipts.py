"""Fiscal e-receipts (财政电子票据): issued when a notice is paid, sealed with the department's seal.

The receipt document is RFC 8785 canonical JSON (deterministic bytes, so anyone can recompute
its SM3 digest) with the fields of the fiscal e-receipt standard as STANDARDS.md §7 lists them:
``EInvoiceCode`` (8 digits: the supervising area's GB/T 2260 code and a 2-digit kind),
``EInvoiceNumber`` (10 digits, per code), ``RandomNumber`` (6-digit check code), payer,
items, total, issue time, ``SupervisorAreaCode``. The collecting department's finance seal
(``InvoicingPartySeal``) signs the digest through the seal node's batch API; the supervisor's
seal (``SupervisorPartySeal``) is the provincial fiscal platform's and is not applied here.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections import defaultdict
from typing import Protocol

import rfc8785
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.crypto.gm import sm3
from common.db import utcnow
from common.errors import NotFound
from payment.models import Notice, Receipt

SUPERVISOR_AREA = "610100"  # 西安市
RECEIPT_KIND = "01"  # 非税收入通用票据
RECEIPT_CODE = SUPERVISOR_AREA + RECEIPT_KIND
FINANCE_SEAL = "finance"
BATCH = 100


class ReceiptSealer(Protocol):
    """The part of a seal-node client receipts need (see the licences node's SealClient)."""

    def seal_for(self, org_code: str, kind: str) -> str: ...

    def sign_batch(self, seal_id: str, items: list[tuple[str, str]], *, idempotency_key: str) -> list: ...


def _document(notice: Notice, code: str, number: str, check_code: str, issued_at) -> dict:
    return {"EInvoiceCode": code, "EInvoiceNumber": number, "RandomNumber": check_code,
            "SupervisorAreaCode": SUPERVISOR_AREA, "EInvoiceName": "非税收入通用票据",
            "InvoicingPartyCode": notice.department_code, "InvoicingPartyName": notice.department_name,
            "PayerPartyName": notice.payer_name, "PayerPartyCode": notice.payer_id_masked,
            "PaymentCode": notice.payment_code, "TotalAmount": notice.paid_amount,
            "IssueDate": issued_at.isoformat(timespec="seconds"),
            "Details": [{"ItemCode": i.fee_code, "ItemName": i.fee_name, "ItemQuantity": i.quantity,
                         "ItemStd": i.unit_amount, "ItemAmount": i.amount} for i in notice.items],
            "AmountUnit": "fen"}


def issue_receipt(session: Session, notice: Notice) -> Receipt:
    """Write the receipt of a just-paid notice (in the caller's transaction), to be sealed later."""
    existing = session.scalar(select(Receipt).where(Receipt.notice_id == notice.id))
    if existing is not None:
        return existing
    for _ in range(10):
        last = session.scalar(select(func.max(Receipt.number)).where(Receipt.code == RECEIPT_CODE))
        number = f"{int(last or 0) + 1:010d}"
        check_code = f"{secrets.randbelow(10**6):06d}"
        issued_at = utcnow()
        document = rfc8785.dumps(_document(notice, RECEIPT_CODE, number, check_code, issued_at)).decode()
        receipt = Receipt(notice_id=notice.id, code=RECEIPT_CODE, number=number, check_code=check_code,
                          department_code=notice.department_code, document=document,
                          digest=sm3(document.encode()).hex(), status="pending_seal", issued_at=issued_at)
        try:
            with session.begin_nested():  # a concurrent payment took this number: take the next
                session.add(receipt)
                session.flush()
            return receipt
        except IntegrityError:
            continue
    raise RuntimeError("no free receipt number after 10 tries")


def seal_pending(session: Session, sealer: ReceiptSealer, *, limit: int = 1000) -> int:
    """Seal receipts waiting for their seal, a batch per department; returns how many were sealed.

    The idempotency key is derived from the receipts in the batch, so a retry after a timeout
    gets the same signatures back instead of a second set.
    """
    pending = list(session.scalars(select(Receipt).where(Receipt.status == "pending_seal")
                                   .order_by(Receipt.issued_at).limit(limit)))
    by_department: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in pending:
        by_department[receipt.department_code].append(receipt)
    sealed = 0
    for department, receipts in by_department.items():
        seal_id = sealer.seal_for(department, FINANCE_SEAL)
        for start in range(0, len(receipts), BATCH):
            batch = receipts[start:start + BATCH]
            key = "receipts:" + sm3("".join(r.id for r in batch).encode()).hex()[:32]
            signatures = sealer.sign_batch(seal_id, [(r.digest, "receipt") for r in batch], idempotency_key=key)
            for receipt, signature in zip(batch, signatures, strict=True):
                receipt.status, receipt.seal_id = "sealed", seal_id
                receipt.signature, receipt.sealed_at = signature.signature_b64, utcnow()
            session.commit()
            sealed += len(batch)
    return sealed


def find_receipt(session: Session, code: str, number: str, check_code: str) -> Receipt:
    """A receipt by its code, number and 6-digit check code (what is printed on it).

    :raise NotFound: no such receipt, or a wrong check code (the same answer for both).
    """
    receipt = session.scalar(select(Receipt).where(Receipt.code == code, Receipt.number == number))
    if receipt is None or not hmac.compare_digest(receipt.check_code, check_code):
        raise NotFound("no receipt with this code, number and check code", code="receipt_not_found")
    return receipt


def receipt_fields(receipt: Receipt) -> dict:
    return json.loads(receipt.document)
