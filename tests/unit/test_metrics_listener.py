"""Prometheus metrics on a listener of their own (issue 12): never on the public app, on the port
each server's settings or ``--metrics-port`` name, one port per ``--workers`` worker."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.routes import document as auth_document
from auth_server.settings import Settings
from resource_server.app import create_app as create_resource_app
from resource_server.routes import document as resource_document
from resource_server.settings import ResourceSettings
from shared import observability, serving
from shared.config import ConfigError
from tests.support.servers import make_settings

Factory = Callable[..., Awaitable[TestClient]]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serving.add_listener_arguments(parser)
    return parser.parse_args(argv)


def test_metrics_are_off_unless_a_port_is_named() -> None:
    assert serving.listener(_args(), Settings.from_env({})).metrics_port == 0
    auth = Settings.from_env({"TESSERA_METRICS_PORT": "9400"})
    assert serving.listener(_args(), auth).metrics_port == 9400
    assert serving.listener(_args("--metrics-port", "9410"), auth).metrics_port == 9410  # the option wins
    resource = ResourceSettings.from_env({"TESSERA_RESOURCE_METRICS_PORT": "9500"})
    assert serving.listener(_args(), resource).metrics_port == 9500


def test_the_metrics_ports_never_take_the_public_one() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ConfigError, match=r"metrics port 8000 .* other than the public port 8000"):
        serving.listener(_args("--metrics-port", "8000"), settings)
    # worker i serves its metrics on the metrics port + i
    with pytest.raises(ConfigError, match="7999-8000"):
        serving.listener(_args("--metrics-port", "7999", "--workers", "2"), settings)
    with pytest.raises(ConfigError, match="65535-65536"):
        serving.listener(_args("--metrics-port", "65535", "--workers", "2"), settings)
    assert serving.listener(_args("--metrics-port", "8001", "--workers", "2"), settings).metrics_port == 8001


def test_no_public_app_and_no_openapi_document_has_metrics() -> None:
    assert "/metrics" not in {route.path for route in observability.ROUTES}
    auth = create_app(make_settings("postgresql://x@h/db", "redis://h/0", "p:"))
    resource = create_resource_app(
        ResourceSettings(issuer="http://localhost:8000", database_url="postgresql://x@h/db", audience="a")
    )
    for app in (auth, resource):
        assert "/metrics" not in {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert "/metrics" not in auth_document()["paths"]
    assert "/metrics" not in resource_document()["paths"]


async def test_the_metrics_app_serves_the_public_apps_metrics_and_nothing_else(
    aiohttp_client: Factory,
) -> None:
    public = web.Application()
    metrics = observability.install(public, "auth")
    metrics.tokens.labels("client_credentials").inc(2)
    listener = await aiohttp_client(observability.metrics_app(metrics))
    response = await listener.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    assert 'tessera_tokens_issued_total{grant_type="client_credentials"} 2.0' in await response.text()
    assert (await listener.get("/healthz")).status == 404
