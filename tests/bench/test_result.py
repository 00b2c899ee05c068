"""Benchmarks end with one flat ``RESULT {json}`` line."""

from __future__ import annotations

import importlib
import json

import pytest

from bench.result import flatten, print_result


def test_nested_figures_become_flat_scalar_keys(capsys):
    print_result({"sign_ratio": 0.5, "proofs": {"sizes": [1000, 10**6], "inclusion_ms": {"1000": 0.7}}})
    line = capsys.readouterr().out.strip()
    assert line.startswith("RESULT ")
    figures = json.loads(line.removeprefix("RESULT "))
    assert figures == {"sign_ratio": 0.5, "proofs_sizes": "1000,1000000", "proofs_inclusion_ms_1000": 0.7}
    assert all(not isinstance(v, dict | list) for v in flatten({"a": {"b": {"c": [1]}}}).values())


@pytest.mark.parametrize("name", ["gm", "identity", "seal", "seal_log", "gateway", "audit_spool"])
def test_every_benchmark_has_a_main(name):
    assert callable(importlib.import_module(f"bench.{name}").main)
