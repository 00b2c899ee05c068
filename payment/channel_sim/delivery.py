"""Delivering notifications as the institutions do: retried on a ladder until acknowledged.

WeChat's ladder (STANDARDS.md §7) is 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h,
3h, 6h, 6h; ``retry_scale`` shrinks it for the embedded run and the tests (0.01 turns 15 s into
0.15 s) without changing its shape. Duplicates are sent as separate deliveries of freshly
signed copies, so the node sees what a real duplicate looks like.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import requests

from payment.channel_sim.notifications import SignedRequest, SimOrder

LADDER_S = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
ACKS = {"wechat": (200, 204), "bank": (200,), "alipay": (200,)}


def acknowledged(channel: str, response: requests.Response) -> bool:
    if response.status_code not in ACKS[channel]:
        return False
    return channel != "alipay" or response.text.strip() == "success"


class Deliverer:
    def __init__(self, sign: Callable[[SimOrder], SignedRequest], *, retry_scale: float = 1.0) -> None:
        self._sign = sign
        self._scale = retry_scale
        self.attempts: list[tuple[str, int]] = []  # (order id, HTTP status or 0), for tests and the log

    def schedule(self, order: SimOrder, url: str, *, copies: int = 1, delay: float = 0.0) -> None:
        for copy in range(max(1, copies)):
            thread = threading.Thread(target=self._deliver, args=(order, url, delay + copy * 0.05), daemon=True)
            thread.start()

    def _deliver(self, order: SimOrder, url: str, delay: float) -> None:
        time.sleep(delay)
        for wait in (0, *LADDER_S):
            time.sleep(wait * self._scale)
            signed = self._sign(order)  # each try is signed afresh, with its own timestamp and nonce
            try:
                response = requests.post(url, data=signed.body, headers=signed.headers, timeout=10)
            except requests.RequestException:
                self.attempts.append((order.order_id, 0))
                continue
            self.attempts.append((order.order_id, response.status_code))
            if acknowledged(order.channel, response):
                return
