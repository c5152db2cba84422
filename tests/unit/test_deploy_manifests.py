"""deploy/ is validated offline: Kubernetes manifests and the Compose file against their schemas.

No Docker engine or cluster runs on our CI machines, so these are validated, not run.
"""

from __future__ import annotations

import ipaddress
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.http import parse_networks

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.33.0"


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


@pytest.mark.parametrize(("name", "document"), _k8s_documents(), ids=[n for n, _ in _k8s_documents()])
def test_kubernetes_manifests_match_the_schema(name: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_every_server_has_probes_limits_autoscaling_and_a_disruption_budget() -> None:
    documents = dict(_k8s_documents())
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents.values()}
    for server in ("tessera-auth", "tessera-resource"):
        assert {
            ("Deployment", server),
            ("Service", server),
            ("HorizontalPodAutoscaler", server),
            ("PodDisruptionBudget", server),
        } <= kinds
    for doc in documents.values():
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
        assert {"TESSERA_KEY_ENCRYPTION_KEY", "TESSERA_DATABASE_URL", "TESSERA_REDIS_URL"} <= secrets
    assert ("Job", "tessera-migrate") in kinds and ("Ingress", "tessera") in kinds
    assert ("CronJob", "tessera-purge") in kinds


def test_compose_file_matches_the_compose_spec() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    assert services["auth"]["deploy"]["replicas"] == 2 and services["resource"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["migrate"]
    assert services["auth"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_image_is_multi_stage_non_root_and_health_checked() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and " AS build" in stages[0]
    final = dockerfile.split(stages[1], 1)[1]
    assert "USER 10001" in final and "HEALTHCHECK" in final
    assert "apt-get" not in final and "gcc" not in final and "COPY --from=build /opt/tessera" in final


def _config_map() -> dict[str, str]:
    (config,) = [doc for name, doc in _k8s_documents() if name == "config.yaml:ConfigMap/tessera-config"]
    data: dict[str, str] = config["data"]
    return data


def test_shipped_configs_trust_no_broad_proxy_range() -> None:
    """X-Forwarded-For is believed from the trusted proxies: a broad range (10.0.0.0/8) lets any
    client whose packets arrive from inside it (SNAT at an ingress or a NodePort) forge its address."""
    k8s = parse_networks(_config_map()["TESSERA_TRUSTED_PROXIES"])
    assert all(n.prefixlen >= (24 if n.version == 4 else 64) for n in k8s), k8s
    assert not any(n.overlaps(ipaddress.ip_network("10.0.0.0/8")) and n.prefixlen <= 8 for n in k8s)
    # compose pins the gateway's address, and trusts that address alone
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    trusted = parse_networks(compose["x-tessera"]["environment"]["TESSERA_TRUSTED_PROXIES"])
    gateway = compose["services"]["gateway"]["networks"]["tessera"]["ipv4_address"]
    assert trusted == (ipaddress.ip_network(gateway),)


def test_the_gateway_sends_hsts_for_https_requests() -> None:
    template = (DEPLOY / "nginx" / "tessera.conf.template").read_text()
    assert re.search(r"^\s*add_header Strict-Transport-Security \$tessera_hsts always;", template, re.M)
    assert '"max-age=63072000; includeSubDomains"' in template
    # an add_header inside a location would silently replace the server-level one there
    directives = [line for line in template.splitlines() if line.strip().startswith("add_header")]
    assert len(directives) == 1
