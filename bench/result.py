"""The last line of every benchmark: ``RESULT {json}``, one flat object."""

from __future__ import annotations

import json
from typing import Any


def flatten(figures: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested figures become ``outer_inner`` keys (``{"inclusion_ms": {"1000": 0.7}}`` →
    ``inclusion_ms_1000``); lists become comma-separated strings, so every value is a scalar."""
    flat: dict[str, Any] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}_"))
        elif isinstance(value, list | tuple):
            flat[name] = ",".join(str(item) for item in value)
        else:
            flat[name] = value
    return flat


def print_result(figures: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(flatten(figures), sort_keys=False))
