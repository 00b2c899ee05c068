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
from typing import Any

import orjson
import structlog

_configured = False


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
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, render_json if binary else render_json_text],
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
