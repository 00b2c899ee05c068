"""The reasons a claim or an outcome's check gives in its INFO line, one per state of the row."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from messaging import claims


def row(status: str, attempt: int) -> SimpleNamespace:
    return SimpleNamespace(status=status, attempt=attempt)


@pytest.mark.parametrize("found,reason", [
    (None, "no such row"),
    (row("sending", 2), "another copy of this task claimed it"),
    (row("sending", 3), "the row has moved on"),
    (row("delivered", 2), "the row has moved on"),
])
def test_why_an_attempt_was_not_claimed(found, reason):
    assert claims._why_not_claimed(found, 2) == reason


@pytest.mark.parametrize("found,reason", [
    (None, "no such row"),
    (row("queued", 2), "the sweeper re-queued it (the send outlasted stuck_after)"),
    (row("sending", 3), "a later attempt has it"),
    (row("queued", 1), "the row has moved on"),
])
def test_why_an_outcome_was_dropped(found, reason):
    assert claims._why_dropped(found, 2) == reason
