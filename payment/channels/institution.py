"""Talking to the institutions: opening an order and asking about one (the query fallback)."""

from __future__ import annotations

from common.errors import ServiceUnavailable
from common.http import ServiceClient


class InstitutionClient:
    """One client for the institutions' order APIs (the simulator in the embedded run)."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    def open_order(self, channel: str, order_id: str, amount: int, *, notify_url: str, return_url: str) -> str:
        """Open the order at the institution; returns where to send the payer.

        :raise ServiceUnavailable: the institution did not take the order.
        """
        try:
            response = self._client.post(f"/{channel}/orders", json={"order_id": order_id, "amount": amount,
                                                                      "notify_url": notify_url,
                                                                      "return_url": return_url})
        except OSError as exc:
            raise ServiceUnavailable(f"the {channel} channel is unreachable", code="channel_unavailable") from exc
        if response.status_code != 201:
            raise ServiceUnavailable(f"the {channel} channel refused the order ({response.status_code})",
                                     code="channel_refused_order")
        return response.json()["pay_url"]

    def query(self, channel: str, order_id: str) -> tuple[dict[str, str], bytes] | None:
        """The institution's signed account of a paid order, or None while it is unpaid.

        :raise ServiceUnavailable: the institution did not answer.
        """
        try:
            response = self._client.get(f"/{channel}/orders/{order_id}/notification")
        except OSError as exc:
            raise ServiceUnavailable(f"the {channel} channel is unreachable", code="channel_unavailable") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable(f"the {channel} channel answered {response.status_code}",
                                     code="channel_unavailable")
        return dict(response.headers), response.content

    def close_order(self, channel: str, order_id: str) -> str:
        """Close an unpaid order at the institution (WeChat's close-order, Alipay's trade.close):
        no payment is taken for it afterwards. ``"closed"`` (also when the institution never had
        it: the order was not opened there), or ``"paid"`` when the payer paid first.

        :raise ServiceUnavailable: the institution did not answer.
        """
        try:
            response = self._client.post(f"/{channel}/orders/{order_id}/close")
        except OSError as exc:
            raise ServiceUnavailable(f"the {channel} channel is unreachable", code="channel_unavailable") from exc
        if response.status_code in (204, 404):
            return "closed"
        if response.status_code == 409:  # ORDERPAID
            return "paid"
        raise ServiceUnavailable(f"the {channel} channel answered {response.status_code}",
                                 code="channel_unavailable")

    def statement(self, channel: str, day: str) -> tuple[bytes, str | None]:
        """The day's statement file and the SHA-256 the institution published for it.

        :raise ServiceUnavailable: the institution did not answer.
        """
        try:
            response = self._client.get(f"/{channel}/statements/{day}")
        except OSError as exc:
            raise ServiceUnavailable(f"the {channel} channel is unreachable", code="channel_unavailable") from exc
        if response.status_code != 200:
            raise ServiceUnavailable(f"the {channel} channel answered {response.status_code}",
                                     code="channel_unavailable")
        return response.content, response.headers.get("X-Statement-SHA256")
