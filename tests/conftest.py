"""Fixtures shared by every test: real PostgreSQL and Redis, a throwaway database, a running app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from auth_server.stores.users import User
from resource_server.schema import MIGRATIONS as RESOURCE_MIGRATIONS
from resource_server.schema import SCHEMA as RESOURCE_SCHEMA
from shared import db
from tests.support.servers import PASSWORD, ClientFactory, LiveServer, make_settings, running_auth_server
from tests.support.services import Services, services, throwaway_database


@pytest.fixture(scope="session")
def backing() -> Iterator[Services]:
    with services() as found:
        yield found


@pytest.fixture(scope="session")
async def database_url(backing: Services) -> AsyncIterator[str]:
    """The database of this test run, migrated once."""
    async with throwaway_database(backing.admin_database_url) as url:
        await db.migrate(url, SCHEMA, MIGRATIONS)
        await db.migrate(url, RESOURCE_SCHEMA, RESOURCE_MIGRATIONS)
        yield url


@pytest.fixture(scope="session")
async def redis_prefix(backing: Services) -> AsyncIterator[str]:
    """A key prefix of this run only; every key under it is deleted at the end."""
    prefix = f"tessera-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    redis = Redis.from_url(backing.redis_url)
    try:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture
def settings(database_url: str, backing: Services, redis_prefix: str) -> Settings:
    return make_settings(database_url, backing.redis_url, redis_prefix)


@pytest.fixture
async def http(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings) -> TestClient:
    """The authorization server under the aiohttp test client."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def registry(http: TestClient) -> Registry:
    app: web.Application | None = http.app
    assert app is not None
    return app[REGISTRY]


@pytest.fixture
def new_client(registry: Registry) -> ClientFactory:
    async def create(
        *,
        public: bool = False,
        redirect_uris: list[str] | None = None,
        grant_types: list[str] | None = None,
        scope: str = "photos:read photos:write",
        auth_method: str | None = None,
        name: str = "Photo Printer",
        require_pkce: bool | None = None,
        **openid: Any,
    ) -> tuple[Client, str | None]:
        """A registered client; ``openid``: more registration metadata by its RFC 7591 /
        OpenID Connect name (``response_types``, ``subject_type``, ``post_logout_redirect_uris``...)."""
        method = auth_method or ("none" if public else "client_secret_basic")
        client, secret, _ = await register(
            registry,
            ClientMetadata(
                client_name=name,
                redirect_uris=redirect_uris or ["https://printer.example/callback"],
                grant_types=grant_types or ["authorization_code", "refresh_token"],
                scope=scope.split(),
                token_endpoint_auth_method=method,
                # Tessera requires PKCE of every client by default (tests/integration/test_hardening.py);
                # the tests of other rules run confidential clients with it relaxed, as an operator may,
                # so that they exercise the code flow both with PKCE and without.
                require_pkce=method == "none" if require_pkce is None else require_pkce,
                **openid,
            ),
        )
        return client, secret

    return create


@pytest.fixture
async def user(registry: Registry) -> User:
    return await registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))


@pytest.fixture
async def live_server(database_url: str, backing: Services, redis_prefix: str) -> AsyncIterator[LiveServer]:
    async with running_auth_server(database_url, backing.redis_url, redis_prefix) as (server, _):
        yield server


@pytest.fixture
async def empty_database(backing: Services) -> AsyncIterator[str]:
    """A database of its own, not migrated, for tests that change global state (keys, migrations)."""
    async with throwaway_database(backing.admin_database_url) as url:
        yield url
