"""docker-compose.yml and the manifests name only services, commands and settings that exist.

There is no Docker engine on this machine kind, so the files are checked against the code.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from common.config import SERVICES
from common.ops.migrate import MIGRATING_SERVICES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def known_settings(service: str) -> set[str]:
    app = importlib.import_module(service).create_app({"TESTING": True})
    keys = set(app.config)
    for other in SERVICES:
        keys |= {f"{other.upper()}_DATABASE_URL", f"{other.upper()}_URL"}
    return keys


def test_every_service_is_in_compose():
    assert set(SERVICES) <= set(COMPOSE["services"])
    assert {"postgres", "redis", "worker", "migrate"} <= set(COMPOSE["services"])


@pytest.mark.parametrize("service", SERVICES)
def test_service_command_names_its_factory(service):
    command = COMPOSE["services"][service]["command"]
    target = command[-1]
    module, _, call = target.partition(":")
    assert module == service and call == "create_app()"
    assert callable(importlib.import_module(module).create_app)
    port = int(command[command.index("--bind") + 1].rsplit(":", 1)[1])
    from common.config import DEFAULT_PORTS

    assert port == DEFAULT_PORTS[service]


@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_environment_variables_are_read_by_the_code(name):
    env = COMPOSE["services"][name].get("environment") or {}
    xsn_vars = [key for key in env if key.startswith("XSN_")]
    known = known_settings("gateway")
    for key in xsn_vars:
        assert key.removeprefix("XSN_") in known, f"{name}: {key} is read by no code"


def test_worker_and_migrate_commands_exist():
    from click.testing import CliRunner

    from common.ops.cli import main

    assert COMPOSE["services"]["migrate"]["command"] == ["xsn", "migrate"]
    assert "migrate" in main.commands
    worker = COMPOSE["services"]["worker"]["command"]
    assert worker[:3] == ["celery", "-A", "common.ops.tasks"]
    importlib.import_module("common.ops.tasks").celery_app  # noqa: B018 - the module must expose the app
    result = CliRunner().invoke(main, ["migrate", "--help"])
    assert result.exit_code == 0


def test_compose_databases_match_init_script():
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+);", init))
    assert created == set(MIGRATING_SERVICES)
    env = COMPOSE["services"]["identity"]["environment"]
    for service in MIGRATING_SERVICES:
        assert env[f"XSN_{service.upper()}_DATABASE_URL"].endswith(f"/{service}")


def test_kubernetes_manifests_match_compose():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "xsn.yaml").read_text()))
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(SERVICES) | {"worker", "beat"} <= set(deployments)
    for service in SERVICES:
        container = deployments[service]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == COMPOSE["services"][service]["command"]
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    known = known_settings("gateway")
    for key in config:
        assert key.removeprefix("XSN_") in known, key
