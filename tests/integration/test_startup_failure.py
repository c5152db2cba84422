"""A start-up that fails part-way closes what it had opened: after signing keys that no configured
key-encryption key opens stop the authorization server from starting, no PostgreSQL connection of
its pool is left, and its Redis client is closed."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import web

from auth_server import app as auth_app
from auth_server import signing
from auth_server.app import create_app
from auth_server.crypto import KeyEncryption
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from auth_server.signing import SigningKeyUnavailable
from auth_server.stores.keys import KeyStore
from shared import db
from shared.redis import create_redis
from tests.support.services import Services

SERVER_KEK = b"\x51" * 32
OTHER_KEK = b"\x52" * 32


async def _connections(admin_url: str, database_url: str) -> int:
    """Backends connected to the database, after giving closed ones a moment to exit."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        deadline = time.monotonic() + 5
        while True:
            count: int = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
            )
            if count == 0 or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def test_a_start_failing_in_key_setup_closes_its_pool_and_redis_client(
    empty_database: str, backing: Services, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.migrate(empty_database, SCHEMA, MIGRATIONS)
    pool = await db.create_pool(empty_database, SCHEMA, min_size=1, max_size=1)
    try:  # the active signing key is wrapped under a key-encryption key the server is not given
        await KeyStore(pool).add(signing.generate("ES256", KeyEncryption(OTHER_KEK), datetime.now(UTC)))
    finally:
        await pool.close()
    assert await _connections(backing.admin_database_url, empty_database) == 0

    clients: list[Any] = []
    closed: list[Any] = []

    def recording_create_redis(url: str) -> Any:
        client = create_redis(url)
        aclose = client.aclose

        async def recorded_aclose(*args: Any, **kwargs: Any) -> None:
            closed.append(client)
            await aclose(*args, **kwargs)

        client.aclose = recorded_aclose
        clients.append(client)
        return client

    monkeypatch.setattr(auth_app, "create_redis", recording_create_redis)
    settings = Settings.from_env(
        {
            "TESSERA_DATABASE_URL": empty_database,
            "TESSERA_REDIS_URL": backing.redis_url,
            "TESSERA_REDIS_PREFIX": redis_prefix,
            "TESSERA_KEY_ENCRYPTION_KEY": base64.b64encode(SERVER_KEK).decode(),
        }
    )
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(SigningKeyUnavailable):
            await runner.setup()
        # before the runner's cleanup: the failed start-up must have closed them itself
        assert await _connections(backing.admin_database_url, empty_database) == 0
        assert len(clients) == 1 and closed == clients
    finally:
        await runner.cleanup()
