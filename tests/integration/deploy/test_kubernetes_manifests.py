"""deploy/kubernetes/ is valid Kubernetes (the API's JSON schemas, strict: an unknown
field is an error, through the kubernetes-validate package) and says what docs/deploy.md
says: probes on /healthz and /livez, non-root with a read-only root file system, the
config the broker loads, placeholder secrets only, a PodDisruptionBudget and Service
that select the Deployment's pods."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from jobtoken.broker.config import load_config
from jobtoken.policy.schema import load_policy_file
from support.wheelhouse import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
#: the oldest Kubernetes release still checked, and the newest the package knows
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _documents() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text())
    ]


def _one(kind: str, name: str = "jobtoken-broker") -> dict[str, Any]:
    (found,) = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    kinds = set()
    for document in _documents():
        kubernetes_validate.validate(document, version, strict=True)
        kinds.add(document["kind"])
    assert kinds == {"ConfigMap", "Deployment", "Service", "Secret", "PodDisruptionBudget"}


def test_the_kustomization_lists_every_manifest_but_the_placeholder_secret() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    expected = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    assert set(kustomization["resources"]) == expected


def test_the_broker_runs_non_root_on_a_read_only_root_with_both_probes() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounted  # the only writable place: --workers shares its metrics there


def test_the_service_and_budget_select_the_deployments_pods_with_nothing_sticky() -> None:
    deployment = _one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    service = _one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["sessionAffinity"] == "None"
    budget = _one("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_the_secret_holds_placeholders_only() -> None:
    values = _one("Secret")["stringData"]
    assert set(values) == {"master.key", "introspection-client.secret", "postgres.dsn"}
    assert values["master.key"].startswith("REPLACE-")
    assert values["introspection-client.secret"].startswith("REPLACE-")
    with pytest.raises(binascii.Error):  # not a key the broker would take
        base64.b64decode(values["master.key"], validate=True)
    assert urlsplit(values["postgres.dsn"]).password is None


def test_the_configmap_is_a_config_the_broker_loads_on_the_mounted_paths(tmp_path: Path) -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (config_path := tmp_path / "broker.toml").write_text(_one("ConfigMap")["data"]["broker.toml"])
    config = load_config(config_path)
    secret_keys = set(_one("Secret")["stringData"])
    assert config.keys.master_key is not None
    for path in (
        config.keys.master_key.file,
        config.store.dsn.file if config.store.dsn else None,
        *(client.secret.file for client in config.clients),
    ):
        assert path is not None
        assert str(path.parent) == mounts["secrets"]
        assert path.name in secret_keys
    assert config.store.kind == "postgres"  # several replicas share one database
    assert str(config.policy.directory) == mounts["policies"]
    assert container["args"][:2] == ["--config", mounts["config"]]


def test_every_policy_in_the_configmap_is_mapped_to_its_path_and_parses(tmp_path: Path) -> None:
    policies = _one("ConfigMap", "jobtoken-policies")["data"]
    volumes = _one("Deployment")["spec"]["template"]["spec"]["volumes"]
    (items,) = [v["configMap"]["items"] for v in volumes if v["name"] == "policies"]
    assert {item["key"] for item in items} == set(policies)
    for item in items:
        path = tmp_path / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(policies[item["key"]])
        policy = load_policy_file(path)
        assert item["path"] == f"{policy.repository}.yml"
