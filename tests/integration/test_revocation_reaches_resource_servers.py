"""Issue 11, defect 5: a revocation at Tessera reaches resource servers that validate JWTs locally.

The Photo Warehouse validates access tokens itself and caches the verified ones, so on its own it
would keep accepting a revoked token until it expires. With the revocation check on (the default)
it pulls Tessera's revocation list (``GET /oauth2/revoked``) in the background and refuses a
revoked ``jti`` on every request, cached tokens included, within about one poll interval plus the
auth server's one-second rendering of the list. With the check off, a revoked token keeps working
until it expires: the documented behaviour.

The warehouse here is configured through its environment variables, polling every second.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.crypto import hash_password
from auth_server.issued import IssuedAccess
from resource_server.app import create_app
from resource_server.settings import ResourceSettings
from tests.integration.test_photo_warehouse import _auth
from tests.support.flow import basic
from tests.support.metrics import scrape
from tests.support.servers import PASSWORD, LiveServer
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]
POLL = 1  # seconds: TESSERA_REVOCATION_REFRESH_INTERVAL of the warehouse under test
WITHIN = 10.0  # seconds a revocation may take to reach the warehouse here (poll + rendering + slack)


def warehouse_settings(live: LiveServer, database_url: str, **env: str) -> ResourceSettings:
    return ResourceSettings.from_env(
        {
            "TESSERA_ISSUER": live.url,
            "TESSERA_RESOURCE_DATABASE_URL": database_url,
            "TESSERA_ACCESS_TOKEN_AUDIENCE": live.settings.access_token_audience,
            "TESSERA_REVOCATION_REFRESH_INTERVAL": str(POLL),
            **{f"TESSERA_{name.upper()}": value for name, value in env.items()},
        }
    )


@pytest.fixture
async def warehouse(aiohttp_client: Factory, live_server: LiveServer, database_url: str) -> TestClient:
    return await aiohttp_client(create_app(warehouse_settings(live_server, database_url)))


async def _signed_in(live: LiveServer) -> tuple[dict[str, str], dict[str, Any]]:
    """A password-grant client's credentials (as Basic headers) and a fresh token response."""
    client, secret = await live.registry.clients.create(
        name="revocation tests",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret
    user = await live.registry.users.create(f"u-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    credentials = basic(client.client_id, secret)
    body = await _post(
        live,
        "/oauth2/token",
        {"grant_type": "password", "username": user.username, "password": PASSWORD, "scope": "photos:read"},
        credentials,
    )
    assert "refresh_token" in body, body
    return credentials, body


async def _post(live: LiveServer, path: str, form: dict[str, str], headers: dict[str, str]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(live.url + path, data=form, headers=headers) as response,
    ):
        return await response.json()


async def _revoke(live: LiveServer, credentials: dict[str, str], token: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{live.url}/oauth2/revoke", data={"token": token}, headers=credentials) as r,
    ):
        assert r.status == 200, await r.text()


async def _cached_and_accepted(warehouse: TestClient, token: str) -> None:
    """Two 200s: the second is answered from the warehouse's verified-token cache."""
    for _ in range(2):
        response = await warehouse.get("/api/me", headers=_auth(token))
        assert response.status == 200, await response.text()


async def _refused_within(warehouse: TestClient, token: str, seconds: float = WITHIN) -> float:
    """How long it took until the warehouse refused ``token`` with 401 invalid_token (a bounded loop)."""
    started = time.monotonic()
    while True:
        response = await warehouse.get("/api/me", headers=_auth(token))
        if response.status == 401:
            challenge = response.headers["WWW-Authenticate"]
            assert 'error="invalid_token"' in challenge, challenge
            assert (await response.json())["error_description"] == "The access token has been revoked."
            return time.monotonic() - started
        assert response.status == 200, await response.text()
        if time.monotonic() - started > seconds:
            pytest.fail(f"the warehouse still accepts the revoked token after {seconds} s")
        await asyncio.sleep(0.1)


def _jti(token: str) -> str:
    jti: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return jti


async def test_an_rfc7009_revocation_reaches_the_warehouse(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    credentials, tokens = await _signed_in(live_server)
    access = tokens["access_token"]
    await _cached_and_accepted(warehouse, access)
    await _revoke(live_server, credentials, access)
    await _refused_within(warehouse, access)
    # the refresh token was not revoked: its next access token works at once
    fresh = await _post(
        live_server,
        "/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        credentials,
    )
    assert (await warehouse.get("/api/me", headers=_auth(fresh["access_token"]))).status == 200


async def test_revoking_a_refresh_token_reaches_the_warehouse(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    credentials, tokens = await _signed_in(live_server)
    await _cached_and_accepted(warehouse, tokens["access_token"])
    await _revoke(live_server, credentials, tokens["refresh_token"])  # the family, and its access token
    await _refused_within(warehouse, tokens["access_token"])


async def test_refresh_token_reuse_detection_reaches_the_warehouse(
    warehouse: TestClient, live_server: LiveServer
) -> None:
    credentials, first = await _signed_in(live_server)
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = await _post(live_server, "/oauth2/token", refresh, credentials)
    assert "access_token" in second, second
    await _cached_and_accepted(warehouse, second["access_token"])
    # the rotated-out refresh token comes back: reuse, so the whole family is revoked
    replay = await _post(live_server, "/oauth2/token", refresh, credentials)
    assert replay["error"] == "invalid_grant", replay
    await _refused_within(warehouse, second["access_token"])


async def test_with_the_check_off_a_revoked_token_works_until_it_expires(
    aiohttp_client: Factory, live_server: LiveServer, database_url: str
) -> None:
    settings = warehouse_settings(live_server, database_url, revocation_check="off")
    warehouse = await aiohttp_client(create_app(settings))
    credentials, tokens = await _signed_in(live_server)
    access = tokens["access_token"]
    await _cached_and_accepted(warehouse, access)
    await _revoke(live_server, credentials, access)
    # the revocation is published (and would reach a warehouse polling every POLL seconds) ...
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + WITHIN
        while True:
            async with session.get(f"{live_server.url}/oauth2/revoked") as response:
                assert response.status == 200
                listed = {entry.get("jti") for entry in (await response.json())["revoked"]}
            if _jti(access) in listed or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert _jti(access) in listed
    await asyncio.sleep(2 * POLL)
    # ... but this warehouse does not look, so the token is accepted until its exp
    assert (await warehouse.get("/api/me", headers=_auth(access))).status == 200
    assert "tessera_revocation_list" not in await scrape(aiohttp_client, warehouse)


async def test_the_revocation_list_is_published_with_etags(live_server: LiveServer) -> None:
    credentials, tokens = await _signed_in(live_server)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{live_server.url}/.well-known/oauth-authorization-server") as response:
            url = (await response.json())["tessera_revocation_list_uri"]
        assert url == f"{live_server.url}/oauth2/revoked"
        await _revoke(live_server, credentials, tokens["access_token"])
        await asyncio.sleep(1.1)  # past the one-second rendering of the list
        async with session.get(url) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            cache_control = response.headers["Cache-Control"]
            assert "no-store" not in cache_control and "max-age=1" in cache_control
            etag = response.headers["ETag"]
            document = await response.json()
        assert document["issuer"] == live_server.url
        assert document["next_update"] >= document["generated_at"]
        exp = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
        assert {"jti": _jti(tokens["access_token"]), "exp": exp} in document["revoked"]
        # nothing else: a token's jti or a grant's id, and an expiry
        assert all(set(entry) in ({"jti", "exp"}, {"grant_id", "exp"}) for entry in document["revoked"])
        async with session.get(url, headers={"If-None-Match": etag}) as response:
            assert response.status == 304
            assert await response.read() == b""
            assert response.headers["ETag"] == etag
        async with session.get(url, headers={"If-None-Match": 'W/"something-else"'}) as response:
            assert response.status == 200


async def test_the_warehouse_reports_the_age_of_its_revocation_list(
    aiohttp_client: Factory, warehouse: TestClient, live_server: LiveServer
) -> None:
    metrics = await scrape(aiohttp_client, warehouse)
    ages = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tessera_revocation_list_age_seconds")
    ]
    assert ages and 0 <= ages[0] < 10 * POLL


async def test_the_published_list_stays_bounded(live_server: LiveServer, backing: Services) -> None:
    """Entries leave the list once no resource server would accept their token any more
    (exp plus the largest clock leeway), trimmed on every write and read; a family is one round trip."""
    store = live_server.registry.revoked_tokens
    key = f"{live_server.settings.redis_prefix}revoked-jtis:{{list}}"
    redis = Redis.from_url(backing.redis_url)
    try:
        stale = f"stale-{uuid.uuid4().hex}"
        await redis.zadd(key, {stale: int(time.time()) - 301})
        now = datetime.now(UTC)
        live, leeway, gone = (f"{name}-{uuid.uuid4().hex}" for name in ("live", "leeway", "gone"))
        await store.revoke_all(
            [
                IssuedAccess(live, now + timedelta(seconds=60)),
                IssuedAccess(leeway, now - timedelta(seconds=10)),  # expired, but within any leeway
                IssuedAccess(gone, now - timedelta(seconds=400)),
            ]
        )
        assert await redis.zscore(key, stale) is None  # trimmed by the write
        listed = {ident: exp for _, ident, exp in await store.listed()}
        assert live in listed and leeway in listed and gone not in listed and stale not in listed
        assert listed[live] == math.ceil((now + timedelta(seconds=60)).timestamp())
        assert await store.is_revoked(live) and not await store.is_revoked(leeway)  # introspection: no leeway
        await redis.zadd(key, {stale: int(time.time()) - 301})
        assert stale not in {ident for _, ident, _ in await store.listed()}  # and by the read
        assert await redis.zscore(key, stale) is None
    finally:
        await redis.aclose()


async def test_a_revoked_family_is_one_entry_however_many_tokens_it_issued(live_server: LiveServer) -> None:
    """Review finding: reuse detection used to list every live access token of the family, so a
    client could inflate the list (and every resource server's memory) by rotating, then replaying."""
    credentials, tokens = await _signed_in(live_server)
    first = tokens["refresh_token"]
    refresh, issued = first, []
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.post(
                f"{live_server.url}/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                headers=credentials,
            ) as response:
                body = await response.json()
                assert response.status == 200, body
            refresh = body["refresh_token"]
            issued.append(body["access_token"])
        async with session.post(
            f"{live_server.url}/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": first},
            headers=credentials,
        ) as response:
            assert (await response.json())["error"] == "invalid_grant"  # the replay: family revoked
        await asyncio.sleep(1.1)  # past the one-second rendering of the list
        async with session.get(f"{live_server.url}/oauth2/revoked") as response:
            revoked = (await response.json())["revoked"]
    grant_id = jwt.decode(issued[-1], options={"verify_signature": False})["grant_id"]
    assert all(jwt.decode(t, options={"verify_signature": False})["grant_id"] == grant_id for t in issued)
    mine = [e for e in revoked if e.get("grant_id") == grant_id or e.get("jti") in {_jti(t) for t in issued}]
    assert mine == [{"grant_id": grant_id, "exp": mine[0]["exp"]}]
