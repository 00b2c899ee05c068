"""Running a piece of work in several threads at once, for the tests of what concurrent
requests do to each other (races on a first use, group commits, idempotent replays)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_threads(work: Callable[[int], T], count: int, *, timeout: float = 60.0) -> list[T | BaseException]:
    """``work(0)`` to ``work(count - 1)``, each in a thread of its own, every thread started
    before any is joined (a ``threading.Barrier(count)`` inside ``work`` lines them up closer);
    each one's result, or the exception it raised, in that order. A thread still running after
    ``timeout`` seconds leaves ``None`` in its place.
    """
    outcomes: list[T | BaseException | None] = [None] * count

    def run(index: int) -> None:
        try:
            outcomes[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - the outcome under test, asserted by the caller
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return outcomes  # type: ignore[return-value]


def raised(outcomes: list) -> list[BaseException]:
    """The exceptions among :func:`in_threads`'s outcomes."""
    return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
