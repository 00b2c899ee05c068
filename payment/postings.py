"""How business events become ledger transfers (记账规则).

Accounts (ids are readable; flags keep impossible balances impossible):

- ``channel_receivable:<channel>``: what a payment channel owes us; credits (settled, refunded)
  may never exceed debits (collected).
- ``payer_clearing``: money received and not yet allocated to a fee; never allocates more
  than it received.
- ``department_revenue:<department>:<fee>``: revenue per collecting department and fee; a
  refund can never take more than was collected.
- ``refunds_payable:<channel>``: refunds granted, to be paid back through the channel.
- ``treasury_settlement:<department>``: the department's position at the treasury: debited by
  each day's settlement (remitted, 缴库), credited by a refund the treasury funds (退库). Its
  debit balance is what the treasury holds for the department; it is in credit only while a
  refund of a closed day's payment waits for that day's settlement (the remittance in transit).
- ``suspense``: money that arrived without a notice to take it (a second payment of a paid
  notice), held until a recorded decision moves it.

Transfer ids are derived from the business event (``pay:<order>``, ``refund:<refund>:<line>``),
so posting the same event twice is a replay the ledger answers with the first result.

Who funds a refund (资金来源) depends on the day, never on whether a settlement has run yet:

- a refund posted on the day of the payment it refunds (Beijing time) is paid by the channel
  out of that day's collections and is netted in that day's settlement (the day has not
  closed, so it cannot have been settled);
- a refund posted on any later day is a refund from the treasury (退库): the day of the payment
  is settled, or will be, in full, so the treasury returns the amount to the channel's
  collection account (``treasury-refund:<refund>``, code ``reversal``: debit the channel's
  receivable, credit the department's treasury settlement) and the channel pays it out.

So a day's settlement depends on that day's payments and same-day refunds alone: running it
before or after a later refund moves the same amount, and a later refund never makes the
channel's receivable pay out money it no longer holds.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from payment.ledger.transfers import AccountSpec, TransferSpec, create_transfers, hold_accounts, open_account
from payment.models import Fee, Notice, PaymentOrder, Refund

PAYER_CLEARING = "payer_clearing"
SUSPENSE = "suspense"


def channel_receivable(channel: str) -> str:
    return f"channel_receivable:{channel}"


def refunds_payable(channel: str) -> str:
    return f"refunds_payable:{channel}"


def department_revenue(department_code: str, fee_code: str) -> str:
    return f"department_revenue:{department_code}:{fee_code}"


def treasury_settlement(department_code: str) -> str:
    return f"treasury_settlement:{department_code}"


def treasury_refund_id(refund_id: str) -> str:
    return f"treasury-refund:{refund_id}"


def open_core_accounts(session: Session, channels: list[str]) -> None:
    open_account(session, AccountSpec(PAYER_CLEARING, "payer_clearing", "缴款人清算",
                                      debits_must_not_exceed_credits=True))
    open_account(session, AccountSpec(SUSPENSE, "suspense", "待处理款项", debits_must_not_exceed_credits=True))
    for channel in channels:
        open_account(session, AccountSpec(channel_receivable(channel), "channel_receivable", f"{channel} 渠道应收",
                                          credits_must_not_exceed_debits=True))
        open_account(session, AccountSpec(refunds_payable(channel), "refunds_payable", f"{channel} 应退款",
                                          debits_must_not_exceed_credits=True))


def open_fee_accounts(session: Session, fee: Fee) -> None:
    open_account(session, AccountSpec(department_revenue(fee.department_code, fee.code), "department_revenue",
                                      f"{fee.department_name} {fee.name}", debits_must_not_exceed_credits=True))
    open_account(session, AccountSpec(treasury_settlement(fee.department_code), "treasury_settlement",
                                      f"{fee.department_name} 国库"))


def post_payment(session: Session, notice: Notice, order: PaymentOrder) -> None:
    """The channel collected ``order.amount`` for ``notice``: receivable, then each fee's revenue."""
    specs = [TransferSpec(f"pay:{order.id}", channel_receivable(order.channel), PAYER_CLEARING, order.amount,
                          "payment", reference=notice.id)]
    specs += [TransferSpec(f"alloc:{order.id}:{item.line}", PAYER_CLEARING,
                           department_revenue(notice.department_code, item.fee_code), item.amount, "payment",
                           reference=notice.id)
              for item in notice.items]
    create_transfers(session, specs, batch_id=f"pay:{order.id}")


def post_unclaimed_payment(session: Session, notice: Notice, order: PaymentOrder) -> None:
    """Money for a notice that is no longer payable (already paid, cancelled): into suspense."""
    create_transfers(session, [TransferSpec(f"pay:{order.id}", channel_receivable(order.channel), SUSPENSE,
                                            order.amount, "payment", reference=notice.id)],
                     batch_id=f"pay:{order.id}")


def hold_returned_payment_accounts(session: Session, order: PaymentOrder) -> None:
    """Lock the accounts of :func:`post_unclaimed_payment` and :func:`post_returned_payment`
    together, in the one order, before the first of them writes (PostgreSQL; see
    :func:`~payment.ledger.transfers.hold_accounts`)."""
    hold_accounts(session, {channel_receivable(order.channel), SUSPENSE, refunds_payable(order.channel)})


def post_returned_payment(session: Session, notice: Notice, order: PaymentOrder) -> None:
    """A payment of an order we had closed, for a notice that can no longer take it: out of
    suspense, back to the payer through the channel (the money never left the channel's
    receivable: suspense is not settled)."""
    create_transfers(session, [
        TransferSpec(f"return:{order.id}", SUSPENSE, refunds_payable(order.channel), order.amount, "refund",
                     reference=notice.id),
        TransferSpec(f"return-paid:{order.id}", refunds_payable(order.channel), channel_receivable(order.channel),
                     order.amount, "refund", reference=notice.id)], batch_id=f"return:{order.id}")


def post_refund(session: Session, notice: Notice, refund: Refund, channel: str, allocation: dict[int, int], *,
                from_treasury: bool) -> None:
    """A granted refund: out of each fee's revenue (``allocation``: line -> fen) into refunds payable,
    then paid back through the channel, as one all-or-nothing batch. ``from_treasury``: the
    treasury first returns the amount to the channel (a refund on a later day than the payment)."""
    items = {item.line: item for item in notice.items}
    specs = [TransferSpec(treasury_refund_id(refund.id), channel_receivable(channel),
                          treasury_settlement(notice.department_code), refund.amount, "reversal",
                          reference=notice.id)] if from_treasury else []
    specs += [TransferSpec(f"refund:{refund.id}:{line}", department_revenue(notice.department_code,
                                                                          items[line].fee_code),
                          refunds_payable(channel), amount, "refund", reference=notice.id)
             for line, amount in sorted(allocation.items())]
    specs.append(TransferSpec(f"refund-paid:{refund.id}", refunds_payable(channel), channel_receivable(channel),
                              refund.amount, "refund", reference=notice.id))
    create_transfers(session, specs, batch_id=f"refund:{refund.id}")
