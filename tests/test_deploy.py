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
        # Per-service settings resolved by common.web.app.create_app (cfg.service_setting).
        keys |= {f"{other.upper()}_{key}" for key in ("DATABASE_URL", "URL", "SECRET_KEY", "KEK")}
    return keys


def test_every_service_is_in_compose():
    assert set(SERVICES) <= set(COMPOSE["services"])
    assert {"postgres", "redis", "worker", "migrate"} <= set(COMPOSE["services"])


# The gateway runs as two containers: its asyncio edge (the front door) and its Flask app
# (gunicorn, "gateway-admin") behind it; every other service is one gunicorn container.
WEB = {service: "gateway-admin" if service == "gateway" else service for service in SERVICES}
ADMIN_PORT = 8010


@pytest.mark.parametrize("service", SERVICES)
def test_service_command_names_its_factory(service):
    command = COMPOSE["services"][WEB[service]]["command"]
    target = command[-1]
    module, _, call = target.partition(":")
    assert module == service and call == "create_app()"
    assert callable(importlib.import_module(module).create_app)
    port = int(command[command.index("--bind") + 1].rsplit(":", 1)[1])
    from common.config import DEFAULT_PORTS

    assert port == (ADMIN_PORT if service == "gateway" else DEFAULT_PORTS[service])


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
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] in ("Deployment", "StatefulSet")}
    assert set(SERVICES) | {"worker", "beat", "gateway-admin"} <= set(deployments)
    for name in [*SERVICES, "gateway-admin"]:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == COMPOSE["services"][name]["command"]
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    known = known_settings("gateway")
    for key in config:
        assert key.removeprefix("XSN_") in known, key


# --- production properties (issue 8): each true in compose and in the Kubernetes manifests ---

K8S = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "xsn.yaml").read_text()))
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
XSN_COMPOSE = {name: spec for name, spec in COMPOSE["services"].items() if name not in ("postgres", "redis")}
XSN_UID = 10001


def k8s(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in K8S if d["kind"] == kind}


def pod_specs() -> dict[str, dict]:
    pods = {name: d["spec"]["template"]["spec"] for name, d in k8s("Deployment").items()}
    pods.update({name: d["spec"]["template"]["spec"] for name, d in k8s("StatefulSet").items()})
    pods.update({name: d["spec"]["template"]["spec"] for name, d in k8s("Job").items()})
    return pods


def secret_refs(container: dict) -> list[str]:
    return [ref["secretRef"]["name"] for ref in container.get("envFrom", []) if "secretRef" in ref]


def test_each_service_reads_its_own_session_secret_and_kek(monkeypatch, tmp_path):
    import identity
    import seal

    monkeypatch.setenv("XSN_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("XSN_KEK", "ff" * 16)  # a shared value must lose to each service's own
    for service, byte in (("identity", "1a"), ("seal", "2b")):
        monkeypatch.setenv(f"XSN_{service.upper()}_SECRET_KEY", f"{service}-session-secret")
        monkeypatch.setenv(f"XSN_{service.upper()}_KEK", byte * 16)
    identity_app, seal_app = identity.create_app({"TESTING": True}), seal.create_app({"TESTING": True})
    assert (identity_app.config["SECRET_KEY"], identity_app.config["KEK"]) == ("identity-session-secret", "1a" * 16)
    assert (seal_app.config["SECRET_KEY"], seal_app.config["KEK"]) == ("seal-session-secret", "2b" * 16)


@pytest.mark.parametrize("service", [*SERVICES, "gateway-admin"])
def test_compose_gives_each_service_only_its_own_secrets(service):
    env = COMPOSE["services"][service]["environment"]
    service = service.removesuffix("-admin")
    secrets = {key for key in env if key.endswith(("_SECRET_KEY", "_KEK"))}
    assert secrets == {f"XSN_{service.upper()}_SECRET_KEY", f"XSN_{service.upper()}_KEK"}
    assert "XSN_SECRET_KEY" not in env and "XSN_KEK" not in env
    for key in secrets:  # required from the operator, never a default shared by every installation
        assert env[key] == f"${{{key}:?" + env[key].split(":?", 1)[1]


@pytest.mark.parametrize("service", [*SERVICES, "gateway-admin"])
def test_kubernetes_gives_each_service_only_its_own_secret(service):
    spec = pod_specs()[service]
    service = service.removesuffix("-admin")
    for container in spec["containers"] + spec.get("initContainers", []):
        assert secret_refs(container) == [f"xsn-{service}"]
    config = k8s("ConfigMap")["xsn-config"]["data"]
    assert not [key for key in config if key.endswith(("SECRET_KEY", "KEK"))]


def test_worker_and_migrate_get_every_services_secrets_and_beat_none():
    for name in ("worker", "migrate"):
        env = COMPOSE["services"][name]["environment"]
        for service in SERVICES:
            assert {f"XSN_{service.upper()}_SECRET_KEY", f"XSN_{service.upper()}_KEK"} <= set(env)
    assert not [key for key in COMPOSE["services"]["beat"]["environment"] if key.endswith(("_SECRET_KEY", "_KEK"))]
    pods = pod_specs()
    job = next(name for name in pods if name.startswith("xsn-migrate"))
    for name in ("worker", job):
        assert set(secret_refs(pods[name]["containers"][0])) == {f"xsn-{service}" for service in SERVICES}
    assert secret_refs(pods["beat"]["containers"][0]) == []


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_add_up_every_gunicorn_worker(service):
    """PROMETHEUS_MULTIPROC_DIR on writable tmpfs and the gunicorn config that keeps it clean."""
    service = WEB[service]
    compose = COMPOSE["services"][service]
    directory = compose["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(directory.startswith(mount.split(":")[0] + "/") for mount in compose["tmpfs"])
    assert compose["command"][:3] == ["gunicorn", "--config", "/app/gunicorn.conf.py"]
    spec = pod_specs()[service]
    container = spec["containers"][0]
    assert container["command"][:3] == ["gunicorn", "--config", "/app/gunicorn.conf.py"]
    env = {item["name"]: item["value"] for item in container["env"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mount = next(path for path in mounts if env["PROMETHEUS_MULTIPROC_DIR"].startswith(path + "/"))
    assert "emptyDir" in volumes[mounts[mount]]
    assert "COPY deploy/gunicorn.conf.py ./gunicorn.conf.py" in DOCKERFILE and "WORKDIR /app" in DOCKERFILE


def test_gunicorn_config_makes_metrics_count_requests_of_all_workers(tmp_path):
    """Two real workers: /metrics, answered by one of them, counts the requests both served."""
    import os
    import sys

    import requests

    from tests.support.suite import free_port, process, wait_for

    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file of a previous run")
    port = free_port()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), XSN_VAR_DIR=str(tmp_path / "var"),
               XSN_DATABASE_URL=f"sqlite:///{tmp_path / 'seal.db'}", XSN_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "deploy" / "gunicorn.conf.py"), "--workers",
            "2", "--bind", f"127.0.0.1:{port}", "--no-control-socket", "seal:create_app()"]
    base = f"http://127.0.0.1:{port}"
    with process(argv, env=env, stop_wait_s=20, log=tmp_path / "gunicorn.log") as server:

        def answers() -> bool:  # any answer: /readyz is not 200 on this unmigrated database, /livez is counted
            assert server.poll() is None, "gunicorn exited"
            try:
                return requests.get(f"{base}/readyz", timeout=1) is not None
            except requests.RequestException:
                return False

        wait_for(answers, 60, "gunicorn's first answer", interval=0.2)
        assert not (metrics_dir / "counter_999999.db").exists()  # emptied when the arbiter started
        sent = 0
        # Sync workers close each connection, so the kernel hands requests to both workers.
        while sent < 20 or (len(list(metrics_dir.glob("counter_*.db"))) < 2 and sent < 2000):
            assert requests.get(f"{base}/livez", timeout=5).status_code == 200
            sent += 1
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2, "one worker served every request"
        text = requests.get(f"{base}/metrics", timeout=5).text
        line = next(line for line in text.splitlines()
                    if line.startswith("xsn_http_requests_total{") and 'route="/livez"' in line)
        assert float(line.rsplit(" ", 1)[1]) == sent
    # Two workers, a socket each: the arbiter's start-up line still names the address.
    assert f"Listening at: http://127.0.0.1:{port}, a SO_REUSEPORT socket per worker" in \
        (tmp_path / "gunicorn.log").read_text()


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_gunicorn_config_gives_each_worker_its_own_socket_only_when_there_are_two(workers, monkeypatch):
    """The rule of ``xsn run`` (common.ops.launcher.gunicorn_argv): SO_REUSEPORT sockets for two
    or more workers, the arbiter's socket for one; from ``--workers`` (set after the file, as
    gunicorn applies the command line), at start and again at a reload (which re-reads the file)."""
    import logging
    import runpy
    from types import SimpleNamespace

    from gunicorn.config import Config

    from common.ops.launcher import gunicorn_argv

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    cfg = Config()
    for name, value in runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py")).items():
        if name in cfg.settings:
            cfg.set(name, value)
    cfg.set("workers", workers)
    server = SimpleNamespace(cfg=cfg, log=SimpleNamespace(error_log=logging.getLogger("test.gunicorn.error")))
    cfg.on_starting(server)
    assert cfg.reuse_port is (workers > 1)
    assert ("--reuse-port" in gunicorn_argv("seal:create_app()", 8003, workers, "xsn-seal")) is cfg.reuse_port
    cfg.set("reuse_port", not cfg.reuse_port)  # a reload puts back the file's own setting
    cfg.on_reload(server)
    assert cfg.reuse_port is (workers > 1)


def test_containers_serve_a_service_with_the_threads_it_chose():
    """``GUNICORN_THREADS`` in ``<service>.processes`` is a measured choice (``xsn run`` serves
    with it: common.ops.launcher.service_concurrency); the containers use the same (compose here,
    the Kubernetes manifests through test_kubernetes_manifests_match_compose)."""
    from common.config import service_modules

    chosen = {service: module.GUNICORN_THREADS for service, module in service_modules("processes")
              if hasattr(module, "GUNICORN_THREADS")}
    assert "payment" in chosen
    for service, threads in chosen.items():
        command = COMPOSE["services"][WEB[service]]["command"]
        assert command[command.index("--threads") + 1] == str(threads), service


def test_beat_is_one_replica_replaced_with_recreate_and_writes_its_schedule_as_non_root():
    beat = k8s("Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    spec = beat["spec"]["template"]["spec"]
    command = spec["containers"][0]["command"]
    schedule = command[command.index("--schedule") + 1]
    mounts = {mount["mountPath"]: mount["name"] for mount in spec["containers"][0]["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mount = next(path for path in mounts if schedule.startswith(path + "/"))
    assert "emptyDir" in volumes[mounts[mount]] and spec["securityContext"]["fsGroup"] == XSN_UID
    compose = COMPOSE["services"]["beat"]
    schedule = compose["command"][compose["command"].index("--schedule") + 1]
    volume = next(v for v in compose["volumes"] if schedule.startswith(v.split(":")[1] + "/"))
    assert volume.split(":")[0] in COMPOSE["volumes"]  # a named volume: created from the image's directory
    directory = volume.split(":")[1]
    assert f"mkdir -p {directory}" in DOCKERFILE and "chown -R xsn:xsn /var/lib/xsn" in DOCKERFILE
    assert "deploy" not in compose  # compose runs one beat unless someone scales it by hand


def test_worker_concurrency_is_explicit_and_worker_and_beat_have_health_checks():
    for command in (COMPOSE["services"]["worker"]["command"], pod_specs()["worker"]["containers"][0]["command"]):
        assert int(command[command.index("--concurrency") + 1]) >= 1
    for name in ("worker", "beat"):
        assert COMPOSE["services"][name]["healthcheck"]["test"]
        probe = pod_specs()[name]["containers"][0]["livenessProbe"]
        assert probe["exec"]["command"]
    assert "inspect ping" in COMPOSE["services"]["worker"]["healthcheck"]["test"][1]
    assert "celerybeat-schedule" in " ".join(COMPOSE["services"]["beat"]["healthcheck"]["test"])


def test_migrations_run_before_anything_that_uses_the_databases():
    for name, spec in XSN_COMPOSE.items():
        if name != "migrate":
            assert spec["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    job = next(d for name, d in k8s("Job").items() if name.startswith("xsn-migrate"))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["xsn", "migrate"]
    for name, deployment in {**k8s("Deployment"), **k8s("StatefulSet")}.items():
        if name == "beat":
            continue  # sends messages only; touches no database
        init = deployment["spec"]["template"]["spec"]["initContainers"]
        command = init[0]["command"]
        assert command[:2] == ["python", "/app/deploy/wait_for_schema.py"]
        waited = set(command[2:command.index("--timeout")])
        own = name.removesuffix("-admin")
        assert waited == ({own} if own in SERVICES else set(SERVICES)), name
    assert "COPY deploy/wait_for_schema.py ./deploy/wait_for_schema.py" in DOCKERFILE


def test_wait_for_schema_waits_until_the_database_is_at_head(tmp_path, monkeypatch):
    import importlib.util

    from common.ops.migrate import upgrade

    spec = importlib.util.spec_from_file_location("wait_for_schema", ROOT / "deploy" / "wait_for_schema.py")
    waiter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(waiter)
    url = f"sqlite:///{tmp_path / 'seal.db'}"
    monkeypatch.setenv("XSN_SEAL_DATABASE_URL", url)
    assert waiter.main(["seal", "--timeout", "0"]) == 1  # empty database: behind the code
    upgrade("seal", url, "base")
    assert waiter.main(["seal", "--timeout", "0"]) == 1
    upgrade("seal", url)
    assert waiter.main(["seal", "--timeout", "0"]) == 0


def test_every_container_runs_restricted():
    for name, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
        writable = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == XSN_UID, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"], name
            assert context.get("privileged", False) is False, name
            tmp = next(mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp")
            assert tmp["name"] in writable, name
    for name, spec in XSN_COMPOSE.items():
        assert spec["read_only"] is True and spec["user"] == f"{XSN_UID}:{XSN_UID}", name
        assert spec["cap_drop"] == ["ALL"] and "no-new-privileges:true" in spec["security_opt"], name
        assert any(mount.split(":")[0] == "/tmp" for mount in spec["tmpfs"]), name
        assert "privileged" not in spec and "cap_add" not in spec, name
    assert f"USER {XSN_UID}:{XSN_UID}" in DOCKERFILE


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and any(ch.isdigit() for ch in tag)


def test_every_image_is_pinned_by_tag():
    images = [spec["image"] for spec in COMPOSE["services"].values()]
    images += [c["image"] for spec in pod_specs().values() for c in spec["containers"] + spec.get("initContainers", [])]
    assert images and all(_pinned(image) for image in images), [i for i in images if not _pinned(i)]
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    assert _pinned(base) and re.search(r":\d+\.\d+\.\d+", base), base  # a patch release, not a moving minor
    xsn_images = {spec["image"] for spec in XSN_COMPOSE.values()}
    assert len(xsn_images) == 1  # every process runs the one image that was built


def test_image_installs_a_cjk_font_and_the_pinned_dependency_set():
    assert re.search(r"apt-get install[^\n]*fonts-wqy-microhei", DOCKERFILE)
    assert "pip install --no-cache-dir -c constraints.txt ." in DOCKERFILE
    assert "COPY constraints.txt" in DOCKERFILE


# --- the gateway (issue 10): the edge in front, its admin app behind, the audit spool kept ---


def _edge_arguments(command: list[str]):
    from gateway.edge.__main__ import build_parser

    assert command[:3] == ["python", "-m", "gateway.edge"]
    return build_parser().parse_args(command[3:])


def test_the_gateway_runs_the_edge_with_its_admin_app_behind_it():
    compose = COMPOSE["services"]["gateway"]
    arguments = _edge_arguments(compose["command"])
    assert (arguments.host, arguments.port) == ("0.0.0.0", 8000) and arguments.workers >= 2
    assert compose["environment"]["XSN_GATEWAY_ADMIN_URL"] == f"http://gateway-admin:{ADMIN_PORT}"
    pod = pod_specs()["gateway"]["containers"][0]
    assert _edge_arguments(pod["command"]) == arguments
    env = {item["name"]: item["value"] for item in pod["env"]}
    assert env["XSN_GATEWAY_ADMIN_URL"] == f"http://gateway-admin:{ADMIN_PORT}"
    assert k8s("Service")["gateway-admin"]["spec"]["ports"][0]["port"] == ADMIN_PORT
    # The edge reads identity's revocation feed as client xsn-gateway: its secret from the operator.
    assert compose["environment"]["XSN_GATEWAY_CLIENT_SECRET"].startswith("${XSN_GATEWAY_CLIENT_SECRET:?")


def test_each_edge_replica_keeps_its_audit_spool_on_a_persistent_volume():
    compose = COMPOSE["services"]["gateway"]
    spool = compose["environment"]["XSN_AUDIT_SPOOL_DIR"]
    volume, _, mount = next(v for v in compose["volumes"] if v.split(":")[1] == spool).partition(":")
    assert volume in COMPOSE["volumes"] and mount == spool  # a named volume, not the container's tmpfs
    assert spool == "/var/lib/xsn/audit-spool" and "/var/lib/xsn/audit-spool" in DOCKERFILE
    edge = k8s("StatefulSet")["gateway"]
    container = edge["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    claim = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == env["XSN_AUDIT_SPOOL_DIR"])
    templates = {t["metadata"]["name"]: t for t in edge["spec"]["volumeClaimTemplates"]}
    assert "ReadWriteOnce" in templates[claim]["spec"]["accessModes"]  # one claim per replica
    assert claim not in {v["name"] for v in edge["spec"]["template"]["spec"]["volumes"]}  # no emptyDir


def test_only_the_gateway_is_reachable_from_outside():
    published = {name for name, spec in COMPOSE["services"].items() if spec.get("ports")}
    assert published == {"gateway"}
    for name, service in k8s("Service").items():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", name
    policies = k8s("NetworkPolicy")
    internal = policies["services-internal-only"]["spec"]
    excluded = set(internal["podSelector"]["matchExpressions"][0]["values"])
    assert internal["podSelector"]["matchExpressions"][0]["operator"] == "NotIn" and excluded == {"gateway",
                                                                                                 "gateway-admin"}
    assert internal["ingress"] == [{"from": [{"podSelector": {}}]}]  # the namespace's own pods only
    admin = policies["gateway-admin-from-gateway"]["spec"]
    assert admin["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "gateway"}}}]
    labelled = {d["spec"]["template"]["metadata"]["labels"]["app"] for d in [*k8s("Deployment").values(),
                                                                           *k8s("StatefulSet").values()]}
    assert labelled - excluded  # the policy selects the services' pods


LIMITS = ("XSN_GATEWAY_MAX_HEADERS", "XSN_GATEWAY_MAX_HEADER_BYTES")


def test_every_container_reads_the_edge_s_header_limits_from_the_shared_settings():
    """Each service's gunicorn.conf.py derives its header limits from the edge's (common.ops.http_limits):
    set in one service's environment only, the gateway's edge and the services would part ways and
    a request the edge lets through could get gunicorn's HTML 431."""
    compose = {name: spec.get("environment", {}) for name, spec in XSN_COMPOSE.items()}
    assert {name: tuple(env.get(key) for key in LIMITS) for name, env in compose.items()} == dict.fromkeys(
        compose, tuple(COMPOSE["x-env"][key] for key in LIMITS))
    config = k8s("ConfigMap")["xsn-config"]["data"]
    assert all(config[key] == COMPOSE["x-env"][key] for key in LIMITS)
    for name, pod in pod_specs().items():
        for container in pod["containers"]:
            refs = [ref["configMapRef"]["name"] for ref in container.get("envFrom", []) if "configMapRef" in ref]
            overridden = {item["name"] for item in container.get("env", [])} & set(LIMITS)
            assert refs == ["xsn-config"] and not overridden, name
