"""How claimed outbox rows reach a worker: Celery tasks, or inline in the calling process.

``celery`` (the services): the relay sends ``messaging.deliver`` / ``messaging.deliver_events``
tasks with batches of (id, attempt). ``inline`` (tests of the domain without a worker): the
same functions run at once in a session of their own. Both run the same code paths.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from messaging import delivery, events
from messaging.channels.webhooks import WebhookSender


class CeleryDispatcher:
    def __init__(self, send_task: Callable[..., Any]) -> None:
        self.send_task = send_task

    def deliveries(self, batch: list[tuple[int, int]]) -> None:
        self.send_task("messaging.deliver", args=[[list(pair) for pair in batch]])

    def events(self, batch: list[tuple[str, int]]) -> None:
        self.send_task("messaging.deliver_events", args=[[list(pair) for pair in batch]])


class InlineDispatcher:
    def __init__(self, sessions: sessionmaker[Session], config: Mapping[str, Any]) -> None:
        self.sessions, self.config = sessions, config
        self.sender = WebhookSender(allow_private=_allow_private(config))

    def deliveries(self, batch: list[tuple[int, int]]) -> None:
        from messaging import wiring

        with self.sessions() as session:
            delivery.deliver_batch(session, batch, wiring.channels(self.config), wiring.delivery_settings(self.config))

    def events(self, batch: list[tuple[str, int]]) -> None:
        from messaging import wiring

        with self.sessions() as session:
            events.deliver_events(session, batch, self.sender.post, wiring.delivery_settings(self.config))


def _allow_private(config: Mapping[str, Any]) -> bool:
    from messaging import wiring

    return wiring.allow_private_webhooks(config)


class Kicker:
    """Asks the worker for a relay run after a send, at most once per ``interval`` per process:
    under load one relay run picks up many messages (beat runs it anyway every second)."""

    def __init__(self, send_task: Callable[..., Any], interval: float = 0.05) -> None:
        self.send_task, self.interval = send_task, interval
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval:
                return
            self._last = now
        # The outbox row is committed: if the broker is away, beat's next relay run finds it.
        with contextlib.suppress(Exception):
            self.send_task("messaging.relay")
