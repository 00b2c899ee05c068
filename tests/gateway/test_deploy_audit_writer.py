"""Compose and Kubernetes run the audit writer beside the edge, on the edge's spool volume."""

from __future__ import annotations

from tests.test_deploy import COMPOSE, k8s


def _writer_arguments(command: list[str]) -> list[str]:
    assert command[:3] == ["python", "-m", "gateway.audit_writer"]
    return command[3:]


def test_compose_runs_one_writer_per_edge_spool_on_the_same_volume():
    edge, writer = COMPOSE["services"]["gateway"], COMPOSE["services"]["gateway-audit-writer"]
    edge_workers = edge["command"][edge["command"].index("--workers") + 1]
    arguments = _writer_arguments(writer["command"])
    assert arguments[arguments.index("--workers") + 1] == edge_workers
    assert writer["environment"]["XSN_AUDIT_SPOOL_DIR"] == edge["environment"]["XSN_AUDIT_SPOOL_DIR"]
    assert set(writer["volumes"]) == set(edge["volumes"])
    assert "XSN_GATEWAY_KEK" in writer["environment"]  # it signs the log's checkpoints
    assert not writer.get("ports")


def test_kubernetes_runs_the_writer_in_each_edge_pod_on_its_spool_claim():
    pod = k8s("StatefulSet")["gateway"]["spec"]["template"]["spec"]
    edge, writer = pod["containers"][0], next(c for c in pod["containers"] if c["name"] == "audit-writer")
    edge_workers = edge["command"][edge["command"].index("--workers") + 1]
    arguments = _writer_arguments(writer["command"])
    assert arguments[arguments.index("--workers") + 1] == edge_workers
    spool = {m["name"]: m["mountPath"] for m in edge["volumeMounts"]}["audit-spool"]
    assert {m["name"]: m["mountPath"] for m in writer["volumeMounts"]}["audit-spool"] == spool
    assert {e["name"]: e["value"] for e in writer["env"]}["XSN_AUDIT_SPOOL_DIR"] == spool
