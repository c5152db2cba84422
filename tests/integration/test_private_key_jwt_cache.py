"""The cache of private_key_jwt clients' fetched key sets (:mod:`auth_server.client_keys`) stays
bounded: at most MAX_CACHED_URIS URIs, least recently used out first, no per-URI lock left behind,
and entries that leave on their own; the last good keys still outlive a short outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

import auth_server.client_keys
from auth_server.client_keys import ClientKeys
from auth_server.clients import Client
from tests.integration.test_private_key_jwt import FakeClock, new_key

URIS = 1_100  # more than the cache may hold


@dataclass
class JwksHost:
    """One client host serving the same key set at every path and query (each a URI of its own)."""

    base: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hits: list[str] = field(default_factory=list)
    delay: float = 0.0

    def uri(self, n: int) -> str:
        return f"{self.base}/jwks.json?client={n}"


@pytest.fixture
async def host() -> AsyncIterator[JwksHost]:
    state = JwksHost()

    async def serve(request: web.Request) -> web.Response:
        state.hits.append(str(request.rel_url))
        await asyncio.sleep(state.delay)
        if state.status != 200:
            return web.Response(status=state.status)
        return web.json_response({"keys": state.keys})

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def client_keys() -> AsyncIterator[ClientKeys]:
    keys = ClientKeys(allow_private=True)  # the test host is on 127.0.0.1
    try:
        yield keys
    finally:
        await keys.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth_server.client_keys, "time", fake)
    return fake


def client_at(uri: str) -> Client:
    return Client(
        client_id=f"partner-{uri.rsplit('=', 1)[-1]}",
        client_name="Partner",
        secret_hash=None,
        redirect_uris=(),
        grant_types=("client_credentials",),
        scope=("photos:read",),
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri=uri,
    )


async def test_the_cache_holds_a_bounded_number_of_uris(host: JwksHost, client_keys: ClientKeys) -> None:
    key = new_key("ES256")
    host.keys = [key.jwk]
    for n in range(URIS):
        assert await client_keys.find(client_at(host.uri(n)), key.kid, "ES256") is not None
    assert len(host.hits) == URIS

    # white-box: what the process keeps is bounded, whatever the number of URIs seen
    assert len(client_keys._cache) <= 1_000 < URIS
    assert len(client_keys._cache) == auth_server.client_keys.MAX_CACHED_URIS
    assert not client_keys._locks

    # the most recently used stay cached; the least recently used left, and are fetched again
    assert await client_keys.find(client_at(host.uri(URIS - 1)), key.kid, "ES256") is not None
    assert len(host.hits) == URIS
    assert await client_keys.find(client_at(host.uri(0)), key.kid, "ES256") is not None
    assert host.hits[-1].endswith("client=0") and len(host.hits) == URIS + 1


async def test_concurrent_lookups_fetch_once_and_leave_no_lock(
    host: JwksHost, client_keys: ClientKeys
) -> None:
    key = new_key("ES256")
    host.keys = [key.jwk]
    host.delay = 0.05  # the lookups overlap the one fetch
    client = client_at(host.uri(1))
    found = await asyncio.gather(*(client_keys.find(client, key.kid, "ES256") for _ in range(50)))
    assert all(k is not None for k in found)
    assert len(host.hits) == 1
    assert not client_keys._locks


async def test_the_last_good_keys_outlive_an_outage_but_not_forever(
    host: JwksHost, client_keys: ClientKeys, clock: FakeClock
) -> None:
    key = new_key("ES256")
    host.keys = [key.jwk]
    client = client_at(host.uri(1))
    assert await client_keys.find(client, key.kid, "ES256") is not None

    host.status = 503  # the client's host goes down, for longer than the five-minute cache
    for _ in range(3):
        clock.offset += auth_server.client_keys.CACHE_SECONDS + 1
        assert await client_keys.find(client, key.kid, "ES256") is not None
    assert len(host.hits) == 4  # each stale lookup tried the host once

    # a key set no one asked for within STALE_IF_ERROR is gone: an outage then finds no key
    clock.offset += auth_server.client_keys.STALE_IF_ERROR + 1
    assert await client_keys.find(client, key.kid, "ES256") is None
    assert len(host.hits) == 5
    host.status = 200
    clock.offset += auth_server.client_keys.REFETCH_INTERVAL + 1
    assert await client_keys.find(client, key.kid, "ES256") is not None


async def test_a_cached_key_set_is_used_for_five_minutes(
    host: JwksHost, client_keys: ClientKeys, clock: FakeClock
) -> None:
    key = new_key("ES256")
    host.keys = [key.jwk]
    client = client_at(host.uri(1))
    started = time.monotonic()
    assert await client_keys.find(client, key.kid, "ES256") is not None
    clock.offset += auth_server.client_keys.CACHE_SECONDS - 5 - (time.monotonic() - started)
    assert await client_keys.find(client, key.kid, "ES256") is not None
    assert len(host.hits) == 1
    clock.offset += 10
    assert await client_keys.find(client, key.kid, "ES256") is not None
    assert len(host.hits) == 2
