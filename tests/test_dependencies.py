"""What the code imports is declared, what is declared is bounded and pinned (issue 8).

pyproject.toml states the ranges the code supports; constraints.txt pins one tested point in
them, used by ``make install``, the image and CI.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(text) for text in PROJECT["dependencies"]]
TEST = [Requirement(text) for text in PROJECT["optional-dependencies"]["test"]]
PRODUCT = ["common", "identity", "licenses", "seal", "payment", "messaging", "gateway"]
FIRST_PARTY = {*PRODUCT, "tests", "bench"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            found[normalise(name)] = version
    return found


def imported_modules(folders: list[str]) -> set[str]:
    modules = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in FIRST_PARTY}


def providers(module: str) -> set[str]:
    return {normalise(dist) for dist in packages_distributions().get(module, [])}


def test_every_runtime_dependency_has_an_upper_bound():
    unbounded = [str(r) for r in RUNTIME if not any(spec.operator in ("<", "<=", "~=", "==") for spec in r.specifier)]
    assert not unbounded


def test_unused_packages_are_not_declared():
    declared = {normalise(r.name) for r in RUNTIME + TEST}
    assert not declared & {"flask-limiter", "factory-boy"}


def test_every_module_the_product_imports_comes_from_a_declared_runtime_dependency():
    declared = {normalise(r.name) for r in RUNTIME}
    missing = {m: providers(m) for m in imported_modules(PRODUCT) if not providers(m) & declared}
    assert not missing, f"imported but not declared in [project.dependencies]: {missing}"


def test_every_module_the_tests_and_benchmarks_import_is_declared():
    declared = {normalise(r.name) for r in RUNTIME + TEST}
    missing = {m: providers(m) for m in imported_modules(["tests", "bench"]) if not providers(m) & declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.parametrize("requirement", RUNTIME + TEST, ids=str)
def test_constraints_pin_each_declared_package_inside_its_range(requirement):
    pinned = pins()
    if requirement.marker and not requirement.marker.evaluate():
        return  # e.g. tongsuopy on a machine it has no wheel for
    version = pinned.get(normalise(requirement.name))
    assert version, f"{requirement.name} is not pinned in constraints.txt"
    assert requirement.specifier.contains(version, prereleases=True), f"{requirement.name}=={version} vs {requirement}"


def test_every_install_uses_the_constraints():
    assert "pip install --quiet -c constraints.txt -e '.[test]'" in (ROOT / "Makefile").read_text()
    assert "pip install --no-cache-dir -c constraints.txt ." in (ROOT / "deploy" / "Dockerfile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make lint" in ci  # CI installs through make, hence the constraints
