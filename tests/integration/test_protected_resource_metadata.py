"""The Photo Warehouse publishes its RFC 9728 metadata and names it in its challenges, against a
real, running Tessera (tokens from its token endpoint, keys from its JWKS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from resource_server.app import create_app
from resource_server.settings import ResourceSettings
from shared.config import ConfigError
from shared.protected_resource import WELL_KNOWN
from tests.integration.test_photo_warehouse import _auth, _token, _user_token, resource_settings
from tests.support.servers import LiveServer
from tests.unit.test_protected_resource import params

Factory = Callable[..., Awaitable[TestClient]]
PUBLIC_URL = "https://photos.example.test/warehouse"  # as seen through a gateway
METADATA_URL = f"https://photos.example.test{WELL_KNOWN}/warehouse"


@pytest.fixture
async def warehouse(aiohttp_client: Factory, live_server: LiveServer, database_url: str) -> TestClient:
    settings = resource_settings(
        live_server.url, live_server.settings.access_token_audience, database_url, resource_url=PUBLIC_URL
    )
    return await aiohttp_client(create_app(settings))


async def test_the_metadata_names_the_warehouse_its_issuer_and_its_scopes(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    response = await warehouse.get(f"{WELL_KNOWN}/warehouse")
    assert response.status == 200
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    document = await response.json()
    assert document["resource"] == PUBLIC_URL  # RFC 9728 §3.3: exactly the identifier
    assert document["authorization_servers"] == [live_server.url]
    assert set(document["scopes_supported"]) == {"photos:read", "photos:write", "warehouse:stats"}
    assert document["bearer_methods_supported"] == ["header"]
    assert document["resource_name"] == "Photo Warehouse API"
    # the authorization server it names is Tessera, and Tessera knows those scopes
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{live_server.url}/.well-known/oauth-authorization-server") as metadata,
    ):
        tessera = await metadata.json()
    assert tessera["issuer"] == document["authorization_servers"][0]
    assert set(document["scopes_supported"]) <= set(tessera["scopes_supported"])


async def test_a_401_without_a_token_points_at_the_metadata(warehouse: TestClient) -> None:
    for path in ("/api/photos", "/api/me", "/api/stats"):
        response = await warehouse.get(path)
        assert response.status == 401, path
        found = params(response.headers["WWW-Authenticate"])
        # RFC 6750 §3.1: a request without credentials gets no error code in the challenge
        assert "error" not in found and found["resource_metadata"] == METADATA_URL
    assert (
        params((await warehouse.get("/api/stats")).headers["WWW-Authenticate"])["scope"] == "warehouse:stats"
    )
    response = await warehouse.get("/api/photos", headers=_auth("not.a.jwt"))
    assert response.status == 401
    found = params(response.headers["WWW-Authenticate"])
    assert found["resource_metadata"] == METADATA_URL and found["scope"] == "photos:read"


async def test_a_403_for_a_missing_scope_names_it_and_the_metadata(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    read_only = await _user_token(live_server, scope="photos:read")
    assert (await warehouse.get("/api/photos", headers=_auth(read_only))).status == 200
    response = await warehouse.delete(
        "/api/photos/00000000-0000-0000-0000-000000000000", headers=_auth(read_only)
    )
    assert response.status == 403
    found = params(response.headers["WWW-Authenticate"])
    assert found["error"] == "insufficient_scope"
    assert found["scope"] == "photos:write" and found["resource_metadata"] == METADATA_URL
    # a partner token (no user) on a user's route: the handler's own refusal names the metadata too
    partner = await _token(live_server, scope="photos:read")
    response = await warehouse.get("/api/photos", headers=_auth(partner))
    assert response.status == 403
    assert params(response.headers["WWW-Authenticate"])["resource_metadata"] == METADATA_URL


async def test_by_default_a_local_warehouse_is_described_at_its_localhost_url(
    aiohttp_client: Factory, live_server: LiveServer, database_url: str
) -> None:
    settings = resource_settings(live_server.url, live_server.settings.access_token_audience, database_url)
    warehouse = await aiohttp_client(create_app(settings))
    document = await (await warehouse.get(WELL_KNOWN)).json()
    assert document["resource"] == f"http://localhost:{settings.port}"
    challenge = (await warehouse.get("/api/photos")).headers["WWW-Authenticate"]
    assert params(challenge)["resource_metadata"] == f"http://localhost:{settings.port}{WELL_KNOWN}"


def test_the_public_url_is_read_from_the_environment() -> None:
    base = {
        "TESSERA_ISSUER": "https://auth.example.test",
        "TESSERA_RESOURCE_DATABASE_URL": "postgresql://x@h/db",
    }
    settings = ResourceSettings.from_env({**base, "TESSERA_RESOURCE_URL": PUBLIC_URL})
    assert settings.resource_identifier() == PUBLIC_URL
    # off localhost, with no public URL, nothing is published (its URL is not known)
    assert ResourceSettings.from_env(base).resource_identifier() is None
    for bad in (
        "http://photos.example.test",
        "https://photos.example.test/?a=b",
        "https://photos.example.test/#x",
    ):
        with pytest.raises(ConfigError, match="TESSERA_RESOURCE_URL"):
            ResourceSettings.from_env({**base, "TESSERA_RESOURCE_URL": bad})
