"""Fakes shared by the message hub's tests."""

from __future__ import annotations


class Recorder:
    """A dispatcher that only records what it was handed (workers that have not run yet)."""

    def __init__(self) -> None:
        self.batches: list = []  # deliveries
        self.event_batches: list = []

    def deliveries(self, batch) -> None:
        self.batches.append(batch)

    def events(self, batch) -> None:
        self.event_batches.append(batch)
