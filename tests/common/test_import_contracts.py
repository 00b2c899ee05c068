"""The import contracts that hold today are kept by the test suite too, not only by `make lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[2]
HOLDING = ["common-imports-no-service", "services-are-independent", "common-core-without-flask",
           "models-without-flask", "no-cycles-in-common", "no-cycles-in-other-services"]


def test_common_and_service_independence_contracts_hold():
    arguments = [arg for contract in HOLDING for arg in ("--contract", contract)]
    result = subprocess.run([Path(sys.executable).parent / "lint-imports", *arguments], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.count(" KEPT") == len(HOLDING)
