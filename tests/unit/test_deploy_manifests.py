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

from auth_server import paths as auth_paths
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
    for server in ("tessera-auth", "tessera-resource", "tessera-mcp"):
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
        assert SECRETS[doc["metadata"]["name"]] <= secrets
    assert ("Job", "tessera-migrate") in kinds and ("Ingress", "tessera") in kinds
    assert ("CronJob", "tessera-purge") in kinds


# what each server reads from tessera-secrets (never from the ConfigMap)
SECRETS = {
    "tessera-auth": {"TESSERA_KEY_ENCRYPTION_KEY", "TESSERA_DATABASE_URL", "TESSERA_REDIS_URL"},
    "tessera-resource": {"TESSERA_KEY_ENCRYPTION_KEY", "TESSERA_DATABASE_URL", "TESSERA_REDIS_URL"},
    # its own client's credentials, and Redis for DPoP proofs seen once across its replicas
    "tessera-mcp": {"TESSERA_MCP_CLIENT_ID", "TESSERA_MCP_CLIENT_SECRET", "TESSERA_REDIS_URL"},
}


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


def _metrics_port(args: list[str]) -> str:
    assert "--metrics-port" in args, args
    return args[args.index("--metrics-port") + 1]


def test_metrics_are_scraped_on_a_port_of_their_own() -> None:
    """/metrics is never on the public port (issue 12): each server gets ``--metrics-port``, the pod
    names that port and tells Prometheus where it is, and no Service or gateway exposes it."""
    documents = dict(_k8s_documents())
    services = {doc["metadata"]["name"]: doc for doc in documents.values() if doc["kind"] == "Service"}
    for doc in documents.values():
        if doc["kind"] != "Deployment":
            continue
        template = doc["spec"]["template"]
        (container,) = template["spec"]["containers"]
        port = _metrics_port(container["args"])
        ports = {p["name"]: str(p["containerPort"]) for p in container["ports"]}
        assert ports["metrics"] == port and ports["http"] != port
        annotations = template["metadata"]["annotations"]
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (port, "/metrics")
        service = services[doc["metadata"]["name"]]
        assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name in ("auth", "resource"):
        assert _metrics_port(compose["services"][name]["command"])
        assert "ports" not in compose["services"][name]  # reached inside the compose network only


def _resource_urls() -> dict[str, tuple[str, str]]:
    """Each shipped deployment's warehouse resource identifier and issuer."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    env = {**compose["x-tessera"]["environment"], **compose["services"]["resource"]["environment"]}
    (resource,) = [doc for name, doc in _k8s_documents() if name.endswith("Deployment/tessera-resource")]
    (container,) = resource["spec"]["template"]["spec"]["containers"]
    k8s = {**_config_map(), **{e["name"]: e["value"] for e in container["env"] if "value" in e}}

    def default(value: str) -> str:  # compose's ${NAME:-default}
        return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)

    return {
        "compose": (default(env["TESSERA_RESOURCE_URL"]), default(env["TESSERA_ISSUER"])),
        "k8s": (k8s["TESSERA_RESOURCE_URL"], k8s["TESSERA_ISSUER"]),
    }


def _resource_routes() -> dict[str, set[str]]:
    """The paths the nginx gateway (compose) and the ingress (k8s) send to the resource server."""
    template = (DEPLOY / "nginx" / "tessera.conf.template").read_text()
    nginx = re.findall(r"location\s+(?:=\s+)?(\S+)\s*\{[^}]*proxy_pass http://tessera_resource;", template)
    (ingress,) = [doc for _, doc in _k8s_documents() if doc["kind"] == "Ingress"]
    k8s = {
        path["path"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
        if path["backend"]["service"]["name"] == "tessera-resource"
    }
    return {"compose": set(nginx), "k8s": k8s}


@pytest.mark.parametrize("deployment", ["compose", "k8s"])
def test_the_warehouse_knows_the_public_url_clients_call(deployment: str) -> None:
    """DPoP proofs name the URL the client called (RFC 9449 §4.3): the warehouse behind the gateway
    must be told it (TESSERA_RESOURCE_URL), on the issuer's origin, at the /api the gateway
    forwards unchanged, and its RFC 9728 metadata route must reach the warehouse."""
    from resource_server.settings import ResourceSettings
    from shared.protected_resource import ProtectedResource

    url, issuer = _resource_urls()[deployment]
    env = {"TESSERA_ISSUER": issuer, "TESSERA_RESOURCE_URL": url, "TESSERA_DATABASE_URL": "postgresql://db/t"}
    settings = ResourceSettings.from_env(env)
    assert settings.resource_identifier() == url == issuer + "/api"
    routes = _resource_routes()[deployment]
    metadata_path = ProtectedResource(resource=url, authorization_servers=[issuer]).metadata_path
    assert metadata_path == "/.well-known/oauth-protected-resource/api" and metadata_path in routes
    assert "/api/" in routes  # the API's paths go through as they are


# --- what the shipped gateways route (review 17) ---

TEMPLATE = DEPLOY / "nginx" / "tessera.conf.template"
_LOCATION = re.compile(r"^\s*location\s+(=\s+)?(\S+)\s*\{([^}]*)\}", re.M)


def _public_paths() -> list[str]:
    """Every path in auth_server/paths.py (each reached by a browser or a client: the admin HTTP API
    and /metrics have ports of their own), a template's ``{client_id}`` filled in, and below each
    path that has paths under it, one more (``/account`` → ``/account/x``): a prefix is routed whole."""
    found = {
        re.sub(r"\{\w+\}", "some-client", value)
        for name, value in vars(auth_paths).items()
        if name.isupper() and isinstance(value, str) and value.startswith("/")
    }
    parents = {p for p in found if p != "/" and any(q.startswith(p + "/") for q in found)}
    return sorted(found | {f"{p}/x" for p in parents})


def _nginx_route(path: str) -> str | None:
    """Where the gateway's template sends ``path``, by nginx's rules (an exact location, else the
    longest prefix; the template has no regex locations): its upstream, or None (not proxied)."""
    locations = [(bool(exact), where, body) for exact, where, body in _LOCATION.findall(TEMPLATE.read_text())]
    assert locations and not any(where.startswith("~") for _, where, _ in locations)
    exact = [body for is_exact, where, body in locations if is_exact and where == path]
    prefixes = [
        (len(where), body) for is_exact, where, body in locations if not is_exact and path.startswith(where)
    ]
    body = exact[0] if exact else max(prefixes)[1] if prefixes else ""
    upstream = re.search(r"proxy_pass\s+http://(\w+);", body)
    return upstream.group(1) if upstream else None


def _ingress_route(path: str) -> str | None:
    """The Service the Ingress sends ``path`` to, by Kubernetes' rules (Exact; Prefix by whole path
    elements; the longest match, Exact first among equals), or None."""
    (ingress,) = [doc for _, doc in _k8s_documents() if doc["kind"] == "Ingress"]
    matches = []
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            where, kind = entry["path"], entry["pathType"]
            base = where.rstrip("/")
            if path == where or (
                kind == "Prefix" and (base == "" or path == base or path.startswith(base + "/"))
            ):
                matches.append((len(base), kind == "Exact", entry["backend"]["service"]["name"]))
    return max(matches)[2] if matches else None


@pytest.mark.parametrize("path", _public_paths())
def test_every_public_path_is_routed_to_the_auth_server(path: str) -> None:
    assert _nginx_route(path) == "tessera_auth", f"nginx template does not route {path}"
    assert _ingress_route(path) == "tessera-auth", f"ingress does not route {path}"


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/clients", "/nowhere"])
def test_internal_paths_are_not_routed(path: str) -> None:
    """/metrics has a port of its own, the probes stay inside, the admin HTTP API (``/clients``…)
    is never behind the gateway; the rest is a 404 at the gateway."""
    assert _nginx_route(path) is None and _ingress_route(path) is None


def test_the_photo_warehouse_keeps_its_routes() -> None:
    for path in ("/api/photos", "/.well-known/oauth-protected-resource/api"):
        assert (_nginx_route(path), _ingress_route(path)) == ("tessera_resource", "tessera-resource")


def test_the_mcp_server_knows_the_public_url_agents_call_and_is_routed_there() -> None:
    """The MCP server behind the Ingress (mcp-server.yaml): its resource identifier is the URL agents
    call (the aud of their tokens, and the htu of their DPoP proofs), on the issuer's origin; its
    endpoint and its RFC 9728 metadata reach it, and it calls the warehouse at its identifier."""
    from resource_server.settings import McpSettings

    (mcp,) = [doc for name, doc in _k8s_documents() if name.endswith("Deployment/tessera-mcp")]
    (container,) = mcp["spec"]["template"]["spec"]["containers"]
    env = {**_config_map(), **{e["name"]: e["value"] for e in container["env"] if "value" in e}}
    env |= {"TESSERA_MCP_CLIENT_ID": "from-the-secret", "TESSERA_MCP_CLIENT_SECRET": "from-the-secret"}
    settings = McpSettings.from_env(env)
    assert settings.resource_identifier() == settings.issuer + "/mcp"
    assert settings.warehouse_url == _resource_urls()["k8s"][0]
    assert container["args"][:3] == ["mcp-server", "--port", str(settings.port)]
    for path in ("/mcp", "/.well-known/oauth-protected-resource/mcp"):
        assert _ingress_route(path) == "tessera-mcp", path
    assert _ingress_route("/mcp/other") is None  # the endpoint alone, exactly
