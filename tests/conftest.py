"""Fixtures shared by every test: real PostgreSQL and Redis, a throwaway database, a running app."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.app import MIGRATIONS, SCHEMA, create_app
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from resource_server.app import MIGRATIONS as RESOURCE_MIGRATIONS
from resource_server.app import SCHEMA as RESOURCE_SCHEMA
from shared import db
from tests.services import Services, services

TEST_KEK = "q5gFjL0Vd8H0b8bJ5xO3e1iE0P6m0Q2j4cQK0Hk7zYI"  # base64 of 32 bytes, tests only
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def backing() -> Iterator[Services]:
    with services() as found:
        yield found


@contextlib.asynccontextmanager
async def throwaway_database(admin_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"tessera_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield db.with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


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


def make_settings(database_url: str, redis_url: str, prefix: str, **overrides: Any) -> Settings:
    environ = {
        "TESSERA_ISSUER": overrides.pop("issuer", "http://localhost:8000"),
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": prefix,
        # every test client comes from 127.0.0.1: a per-IP lockout would couple unrelated tests
        "TESSERA_LOGIN_MAX_FAILURES_PER_IP": "1000000",
        # likewise the per-IP request rates (their own tests turn them on with a private key prefix)
        "TESSERA_RATE_TOKEN_PER_IP": "0",
        "TESSERA_RATE_AUTHORIZE_PER_IP": "0",
        "TESSERA_RATE_LOGIN_PER_IP": "0",
    }
    environ.update({f"TESSERA_{k.upper()}": str(v) for k, v in overrides.items()})
    return Settings.from_env(environ)


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


ClientFactory = Callable[..., Awaitable[tuple[Client, str | None]]]


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
    ) -> tuple[Client, str | None]:
        method = auth_method or ("none" if public else "client_secret_basic")
        return await registry.clients.create(
            name=name,
            redirect_uris=redirect_uris or ["https://printer.example/callback"],
            grant_types=grant_types or ["authorization_code", "refresh_token"],
            scope=scope.split(),
            auth_method=method,
            # Tessera requires PKCE of every client by default (tests/integration/test_hardening.py);
            # the tests of other rules run confidential clients with it relaxed, as an operator may,
            # so that they exercise the code flow both with PKCE and without.
            require_pkce=method == "none" if require_pkce is None else require_pkce,
        )

    return create


@pytest.fixture
async def user(registry: Registry) -> User:
    return await registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    registry: Registry


@contextlib.asynccontextmanager
async def running_auth_server(
    database_url: str, redis_url: str, prefix: str
) -> AsyncIterator[tuple[LiveServer, web.AppRunner]]:
    """The authorization server on a real loopback port, its issuer the URL it is reached at.

    The runner is handed out too, so a test can stop the server early (``await runner.cleanup()``).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = make_settings(database_url, redis_url, prefix, issuer=url)
    app = create_app(live)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield LiveServer(url, live, app[REGISTRY]), runner
    finally:
        await runner.cleanup()


@pytest.fixture
async def live_server(database_url: str, backing: Services, redis_prefix: str) -> AsyncIterator[LiveServer]:
    async with running_auth_server(database_url, backing.redis_url, redis_prefix) as (server, _):
        yield server


@pytest.fixture
async def empty_database(backing: Services) -> AsyncIterator[str]:
    """A database of its own, not migrated, for tests that change global state (keys, migrations)."""
    async with throwaway_database(backing.admin_database_url) as url:
        yield url
