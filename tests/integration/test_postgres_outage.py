"""PostgreSQL stopped and started again under a running app: clear 503s while it is away, then the
pool reconnects by itself; a refresh-token family is never left half-rotated (one transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.crypto import hash_password
from auth_server.schema import MIGRATIONS, SCHEMA
from shared import db, embedded
from tests.support.flow import basic
from tests.support.servers import PASSWORD, make_settings, registry_of
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]


async def test_postgres_restart_gives_503_then_recovers(
    aiohttp_client: Factory, own_postgres: Path, backing: Services, redis_prefix: str
) -> None:
    url = await asyncio.to_thread(embedded.postgres_url, own_postgres, "outage")
    await db.migrate(url, SCHEMA, MIGRATIONS)
    http = await aiohttp_client(create_app(make_settings(url, backing.redis_url, redis_prefix)))
    registry = registry_of(http)
    client, secret = await registry.clients.create(
        name="App",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret
    user = await registry.users.create("pg-outage", hash_password(PASSWORD))
    auth = basic(client.client_id, secret)
    form = {"grant_type": "password", "username": user.username, "password": PASSWORD}
    tokens = await (await http.post("/oauth2/token", data=form, headers=auth)).json()
    assert "refresh_token" in tokens

    await asyncio.to_thread(embedded.stop, own_postgres)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    response = await http.post("/oauth2/token", data=refresh, headers=auth)
    assert response.status == 503, await response.text()
    assert (await response.json())["error"] == "temporarily_unavailable"
    assert (await http.get("/readyz")).status == 503

    assert await asyncio.to_thread(embedded.postgres_url, own_postgres, "outage") == url
    for _ in range(100):
        if (await http.get("/readyz")).status == 200:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the pool never reconnected")
    # the failed rotation changed nothing: the same refresh token still works, exactly once
    for _ in range(20):  # a pooled connection broken by the restart may need one retry
        response = await http.post("/oauth2/token", data=refresh, headers=auth)
        if response.status != 503:
            break
        await asyncio.sleep(0.1)
    assert response.status == 200, await response.text()
    conn = await asyncpg.connect(url)
    try:
        families = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.refresh_token_families")
        live = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.refresh_tokens WHERE rotated_at IS NULL")
    finally:
        await conn.close()
    assert (families, live) == (1, 1)
