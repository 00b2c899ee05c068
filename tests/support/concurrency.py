"""Running work in threads, for the tests of what concurrent requests do to each other (races on
a first use, group commits, idempotent replays, one unit of work held while another runs)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict]:
    """``work()`` started in a thread of its own (a daemon: one left hanging does not keep the test
    run alive); the dict gets its result, or the exception it raised, under ``"value"`` once it ends.
    The caller joins the thread."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - the outcome under test, asserted by the caller
            outcome["value"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def in_threads(work: Callable[[int], T], count: int, *, timeout: float = 60.0) -> list[T | BaseException]:
    """``work(0)`` to ``work(count - 1)``, each in a thread of its own (:func:`in_thread`), every
    thread started before any is joined (a ``threading.Barrier(count)`` inside ``work`` lines them
    up closer); each one's result, or the exception it raised, in that order. A thread still
    running after ``timeout`` seconds leaves ``None`` in its place.
    """
    started = [in_thread(lambda index=index: work(index)) for index in range(count)]
    for thread, _outcome in started:
        thread.join(timeout)
    return [outcome.get("value") for _thread, outcome in started]


def raised(outcomes: list) -> list[BaseException]:
    """The exceptions among :func:`in_threads`'s outcomes."""
    return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
