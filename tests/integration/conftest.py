"""Fixtures of the integration tests: real servers driven from synchronous (Hypothesis) code, and
a PostgreSQL of a test's own for the tests that stop it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.app import create_app
from resource_server.app import create_app as create_resource_app
from resource_server.settings import ResourceSettings
from shared import embedded
from tests.support.servers import AppFactory, free_port, make_settings
from tests.support.services import Services


@pytest.fixture(scope="session")
def servers(database_url: str, backing: Services) -> Iterator[tuple[str, str]]:
    """(auth URL, resource URL), served from their own event loop in a thread."""
    loop = asyncio.new_event_loop()
    auth_port, resource_port = free_port(), free_port()
    auth_url = f"http://127.0.0.1:{auth_port}"
    prefix = "tessera-test-fuzz:"
    runners: list[web.AppRunner] = []

    async def start() -> None:
        auth = web.AppRunner(
            create_app(make_settings(database_url, backing.redis_url, prefix, issuer=auth_url))
        )
        await auth.setup()
        await web.TCPSite(auth, "127.0.0.1", auth_port).start()
        resource_settings = ResourceSettings(
            issuer=auth_url, database_url=database_url, audience=f"{auth_url}/api"
        )
        resource = web.AppRunner(create_resource_app(resource_settings))
        await resource.setup()
        await web.TCPSite(resource, "127.0.0.1", resource_port).start()
        runners.extend([auth, resource])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield auth_url, f"http://127.0.0.1:{resource_port}"
    finally:

        async def stop() -> None:
            for runner in reversed(runners):
                await runner.cleanup()
            redis_client = Redis.from_url(backing.redis_url)
            async for key in redis_client.scan_iter(match=f"{prefix}*"):
                await redis_client.delete(key)
            await redis_client.aclose()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Path]:
    """A PostgreSQL of this test's own (embedded), so stopping it disturbs nothing else."""
    try:
        yield tmp_path
    finally:
        embedded.stop(tmp_path)


@pytest.fixture
async def app_with(
    aiohttp_client: AppFactory, database_url: str, backing: Services
) -> AsyncIterator[AppFactory]:
    """``await app_with(**settings)``: an authorization server with settings of its own (as
    ``TESSERA_*`` overrides) and a Redis prefix of its own, so its counters start at zero."""
    prefixes: list[str] = []

    async def make(**overrides: Any) -> TestClient:
        prefix = f"tessera-test-own-{uuid.uuid4().hex[:8]}:"
        prefixes.append(prefix)
        return await aiohttp_client(
            create_app(make_settings(database_url, backing.redis_url, prefix, **overrides))
        )

    yield make
    redis = Redis.from_url(backing.redis_url)
    try:
        for prefix in prefixes:
            async for key in redis.scan_iter(match=f"{prefix}*"):
                await redis.delete(key)
    finally:
        await redis.aclose()
