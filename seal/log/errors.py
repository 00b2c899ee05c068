"""Problems the signature log raises (problem+json through the service's error handlers)."""

from __future__ import annotations

from common.errors import NotFound, Problem


class LogError(Problem):
    status, code, title = 400, "log_error", "Log request rejected"


class BadRange(LogError):
    code, title = "log_range_invalid", "Invalid log range"


class NoCheckpoint(NotFound):
    code, title = "checkpoint_not_found", "No checkpoint"


def head_missing() -> LogError:
    return LogError("the log head row is missing (run the migrations)", code="log_head_missing", status=500)
