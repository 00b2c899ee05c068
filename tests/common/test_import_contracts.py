"""The import contracts (`.importlinter`) are kept by the test suite too, not only by `make lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_contract_holds():
    contracts = [line.split(":")[-1].rstrip("]") for line in (ROOT / ".importlinter").read_text().splitlines()
                 if line.startswith("[importlinter:contract:")]
    result = subprocess.run([Path(sys.executable).parent / "lint-imports"], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(contracts) >= 13 and result.stdout.count(" KEPT") == len(contracts)
