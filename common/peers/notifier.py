"""Notifying people through the message hub, behind a :class:`Notifier` (contract 4 of the hub's
send API: ``POST /messages`` with a template, variables, recipients and an ``Idempotency-Key``).

The hub deduplicates on the key, so a caller that sends again after a crash between sending
and recording it gets one message, not two.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests

from common.http import ServiceClient


class NotifyFailed(Exception):
    """The hub did not accept the message (transport error or refusal)."""


class Notifier(Protocol):
    def send(self, template: str, variables: dict[str, Any], recipients: list[dict[str, str]], *,
             idempotency_key: str) -> str:
        """Queue a message; its id. :raise NotifyFailed:"""


class MemoryNotifier:
    """Keeps what it was asked to send (tests, a node run without the hub)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = False

    def send(self, template, variables, recipients, *, idempotency_key):
        if self.fail:
            raise NotifyFailed("simulated hub outage")
        for earlier in self.sent:
            if earlier["idempotency_key"] == idempotency_key:
                return earlier["message_id"]
        message_id = f"mem-{len(self.sent) + 1}"
        self.sent.append({"template": template, "variables": variables, "recipients": recipients,
                          "idempotency_key": idempotency_key, "message_id": message_id})
        return message_id


class HubNotifier:
    """``POST /messages`` on the message hub (client-credentials token with ``messaging:send``).

    ``category``, ``priority`` and ``channels`` are the sending node's: holders' notices go in-app
    then by SMS; identity's reset links are critical security SMS to a raw number.
    """

    def __init__(self, client: ServiceClient, *, category: str = "notice", priority: str = "normal",
                 channels: tuple[str, ...] = ("inapp", "sms")) -> None:
        self.client = client
        self.options = {"category": category, "priority": priority, "channels": list(channels)}

    def send(self, template, variables, recipients, *, idempotency_key):
        body = {"template": template, "variables": variables, "recipients": recipients, **self.options}
        try:
            response = self.client.post("/messages", json=body, headers={"Idempotency-Key": idempotency_key})
        except NotifyFailed:
            raise  # no token for the hub
        except requests.RequestException as exc:
            raise NotifyFailed(f"the message hub did not answer: {type(exc).__name__}") from None
        if response.status_code not in (200, 201, 202):
            raise NotifyFailed(f"the message hub answered {response.status_code}")
        return str(response.json().get("message_id", ""))
