"""What every channel adapter offers, and the shapes it hands to the payment domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from common.errors import Problem

# A callback whose timestamp is further than this from our clock is refused (replay window).
TIMESTAMP_WINDOW_S = 300


class CallbackRejected(Problem):
    """An institution's notification that cannot be trusted or does not parse: nothing is posted."""

    status, code, title = 400, "callback_rejected", "Callback rejected"


@dataclass(frozen=True)
class PaidNotification:
    """A verified "this order was paid" from a channel."""

    order_id: str
    channel_transaction_id: str
    amount: int  # fen
    paid_at: datetime
    notification_id: str  # the institution's id of this notification (for the callback record)


@dataclass(frozen=True)
class Ack:
    status: int
    body: bytes
    content_type: str


class ChannelAdapter(Protocol):
    name: str

    def parse_callback(self, headers: dict[str, str], body: bytes, now: float) -> PaidNotification:
        """Verify and decode a notification. :raise CallbackRejected: with a stable code."""

    def ack(self) -> Ack:
        """The answer that tells the institution to stop retrying."""

    def nack(self, reason: str) -> Ack:
        """The answer that tells the institution to retry later."""
