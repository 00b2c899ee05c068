"""Structured JSON logs (structlog) carrying request id, client id and subject.

Every request writes one access line, so the line's cost matters (issue 9). Measured per
line on the 2-core CI machine kind: structlog with the stdlib ``json`` renderer and a print
logger ~21 µs; the same processors with orjson writing bytes ~14 µs. Loggers are cached on
first use (``cache_logger_on_first_use``) and filtered by level in the bound logger itself
(``make_filtering_bound_logger``), so a disabled level costs a method call. The output stays
one JSON object per line on stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

_configured = False
# The access line's direct writer (log_access), set by configure_logging: the structlog
# processors it stands for, the output, and whether INFO passes the configured level.
_processors: list | None = None
_output: structlog.BytesLogger | None = None
_info_enabled = True
_debug_enabled = False
_get_contextvars = structlog.contextvars.get_contextvars


def _fallback(value: Any) -> Any:
    """What orjson cannot encode by itself (exceptions, Decimals, custom objects): its ``repr``,
    or ``__structlog__()`` where an object offers one, as structlog's own renderer does."""
    method = getattr(value, "__structlog__", None)
    return method() if callable(method) else repr(value)


def render_json(_logger: Any, _name: str, event_dict: dict[str, Any]) -> bytes:
    """One JSON object in bytes; orjson first, the standard library when orjson refuses
    (e.g. an integer beyond 64 bits), so a log line is never lost to its encoding."""
    try:
        return orjson.dumps(event_dict, default=_fallback, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(event_dict, default=_fallback, ensure_ascii=False).encode()


def render_json_text(logger: Any, name: str, event_dict: dict[str, Any]) -> str:
    return render_json(logger, name, event_dict).decode()


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: several apps may be built in one process (tests, the launcher)."""
    global _configured
    if _configured:
        return
    _configured = True
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    binary = getattr(sys.stderr, "buffer", None)  # absent when stderr was replaced by a text stream
    global _processors, _output, _info_enabled, _debug_enabled
    processors = [*shared, structlog.processors.format_exc_info, render_json if binary else render_json_text]
    _processors = list(processors)  # a copy: structlog's own list may be changed in place
    _output = structlog.BytesLogger(binary) if binary else None
    _info_enabled = logging.getLevelName(level) <= logging.INFO
    _debug_enabled = logging.getLevelName(level) <= logging.DEBUG
    structlog.configure(
        processors=processors,
        logger_factory=structlog.BytesLoggerFactory(file=binary) if binary else structlog.PrintLoggerFactory(
            file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    # Library logs (werkzeug, celery, alembic) go through the same JSON renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, render_json_text],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_access(logger: Any, fields: dict[str, Any], *, debug: bool = False) -> None:
    """Write the access line ``logger.info("request", **fields)`` (``debug``: at DEBUG), byte for byte what structlog
    writes under :func:`configure_logging` (the fields, ``event``, the bound context
    variables, ``level``, ``timestamp``; orjson; the same output and its lock), without
    walking structlog's bound logger and processor chain, which cost a tenth of a trivial
    request (issue 9). When structlog's configuration is not the one made here (a test
    capturing logs, another renderer), the line goes through ``logger`` as usual.
    ``fields`` is taken over (the caller builds it for this line).
    """
    # Compared by content: structlog.testing.capture_logs swaps the processors in place.
    if _output is None or structlog.get_config()["processors"] != _processors:
        (logger.debug if debug else logger.info)("request", **fields)
        return
    if not (_debug_enabled if debug else _info_enabled):
        return
    fields["event"] = "request"
    for key, value in _get_contextvars().items():
        fields.setdefault(key, value)
    fields["level"] = "debug" if debug else "info"
    fields["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    _output.msg(render_json(None, "info", fields))
