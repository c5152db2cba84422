"""Signing keys and the JWKS (RFC 7517): creation, encryption at rest, rotation across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.exceptions import InvalidTag

from auth_server import keys
from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.crypto import KeyEncryption
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from shared import db
from tests.support.servers import make_settings

AppFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def own_db(empty_database: str) -> str:
    await db.migrate(empty_database, SCHEMA, MIGRATIONS)
    return empty_database


def _settings(url: str, settings: Settings, prefix: str, **extra: object) -> Settings:
    return make_settings(url, settings.redis_url or "", prefix, **extra)


async def _kids(http: TestClient, alg: str | None = "ES256") -> list[str]:
    """The published key ids, of the access tokens' algorithm unless ``alg`` says otherwise (None: all)."""
    response = await http.get("/oauth2/jwks")
    assert response.status == 200
    assert "max-age=300" in response.headers["Cache-Control"]
    assert response.content_type == "application/jwk-set+json"
    keys_ = (await response.json())["keys"]
    assert all("d" not in k for k in keys_), "private parts must never be published"
    return [k["kid"] for k in keys_ if alg is None or k["alg"] == alg]


def _kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def test_first_start_creates_one_key_per_algorithm_even_with_two_replicas(
    aiohttp_client: AppFactory, own_db: str, settings: Settings, redis_prefix: str
) -> None:
    """One ES256 key for access tokens, one RS256 key for ID tokens (OpenID Connect Discovery §3:
    RS256 must be offered) and the ES256 one serves ID tokens of clients registered for ES256."""
    one = await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix)))
    two = await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix)))
    assert await _kids(one, None) == await _kids(two, None)
    assert len(await _kids(one, "ES256")) == 1
    assert len(await _kids(one, "RS256")) == 1
    assert len(await _kids(one, None)) == 2


async def test_private_keys_are_encrypted_at_rest(
    aiohttp_client: AppFactory, own_db: str, settings: Settings, redis_prefix: str
) -> None:
    await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix)))
    conn = await asyncpg.connect(own_db)
    try:
        row = await conn.fetchrow(f"SELECT kid, private_key_encrypted FROM {SCHEMA}.signing_keys")
    finally:
        await conn.close()
    assert row is not None
    blob = bytes(row["private_key_encrypted"])
    assert b"\x30\x81" not in blob[:16]  # not a bare DER structure
    assert KeyEncryption(settings.key_encryption_key).decrypt(blob, row["kid"])  # the right key opens it
    with pytest.raises(InvalidTag):
        KeyEncryption(b"\x00" * 32).decrypt(blob, row["kid"])
    with pytest.raises(InvalidTag):
        KeyEncryption(settings.key_encryption_key).decrypt(blob, "another-kid")


async def test_rotation_prepublishes_then_switches_and_keeps_the_old_key_published(
    aiohttp_client: AppFactory, own_db: str, settings: Settings, redis_prefix: str
) -> None:
    http = await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix)))
    registry = http.app[REGISTRY]
    (old,) = await _kids(http)
    assert (
        _kid_of(
            registry.access_tokens.sign(
                registry.access_tokens.prepare(), subject="s", client_id="c", scope=("a",)
            )
        )
        == old
    )

    upcoming = await keys.rotate(registry, prepublication=3600)
    await keys.reload(registry)
    assert await _kids(http) == [old, upcoming.kid]  # published before it signs
    token = registry.access_tokens.sign(
        registry.access_tokens.prepare(), subject="s", client_id="c", scope=("a",)
    )
    assert _kid_of(token) == old

    immediate = await keys.rotate(registry, prepublication=0)
    await keys.reload(registry)
    token = registry.access_tokens.sign(
        registry.access_tokens.prepare(), subject="s", client_id="c", scope=("a",)
    )
    assert _kid_of(token) == immediate.kid
    # the old key still verifies tokens that have not expired
    assert old in await _kids(http)


async def test_rotation_through_one_replica_reaches_the_other(
    aiohttp_client: AppFactory, own_db: str, settings: Settings, redis_prefix: str
) -> None:
    one = await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix)))
    two = await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix, key_refresh_interval=1)))
    rotated = await keys.rotate(one.app[REGISTRY], prepublication=0)
    for _ in range(40):
        if rotated.kid in await _kids(two):
            break
        await asyncio.sleep(0.1)
    assert rotated.kid in await _kids(two)


async def test_rs256_is_selectable(
    aiohttp_client: AppFactory, own_db: str, settings: Settings, redis_prefix: str
) -> None:
    http = await aiohttp_client(create_app(_settings(own_db, settings, redis_prefix, signing_alg="RS256")))
    registry = http.app[REGISTRY]
    token = registry.access_tokens.sign(
        registry.access_tokens.prepare(), subject="s", client_id="c", scope=("a",)
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    jwk = next(
        k for k in (await (await http.get("/oauth2/jwks")).json())["keys"] if k["kid"] == header["kid"]
    )
    assert jwk["kty"] == "RSA"
    claims = jwt.decode(
        token, jwt.PyJWK(jwk), algorithms=["RS256"], audience=registry.settings.access_token_audience
    )
    assert claims["sub"] == "s"


async def test_server_refuses_to_start_on_an_unmigrated_database(
    empty_database: str, settings: Settings, redis_prefix: str
) -> None:
    runner = web.AppRunner(create_app(_settings(empty_database, settings, redis_prefix)))
    try:
        with pytest.raises(RuntimeError, match="tessera migrate"):
            await runner.setup()
    finally:
        await runner.cleanup()
