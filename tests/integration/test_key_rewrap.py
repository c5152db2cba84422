"""Key-encryption-key rotation: keys wrapped under KEK A, then B current with A previous, then
``tessera keys rewrap`` (run as the README runs it), then B alone."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server import keys, signing
from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.crypto import KeyEncryption, kek_id_of
from auth_server.registry import Registry
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from auth_server.signing import SigningKeyUnavailable
from auth_server.stores.keys import KeyStore
from shared import db
from tests.support.servers import TEST_KEK, make_settings
from tests.support.services import Services

AppFactory = Callable[..., Awaitable[TestClient]]

KEK_A = TEST_KEK
KEK_B = base64.b64encode(b"\xb0" * 32).decode()
KEK_C = base64.b64encode(b"\xc0" * 32).decode()


def _raw(kek: str) -> bytes:
    return base64.b64decode(kek + "=" * (-len(kek) % 4))


ID_A, ID_B, ID_C = (kek_id_of(_raw(k)) for k in (KEK_A, KEK_B, KEK_C))


@pytest.fixture
async def own_db(empty_database: str) -> str:
    await db.migrate(empty_database, SCHEMA, MIGRATIONS)
    return empty_database


def _settings(url: str, backing: Services, prefix: str, current: str, previous: str = "") -> Settings:
    return make_settings(
        url,
        backing.redis_url,
        prefix,
        key_encryption_key=current,
        key_encryption_keys_previous=previous,
    )


def _tessera(
    url: str, backing: Services, prefix: str, current: str, previous: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": current,
        "TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS": previous,
        "TESSERA_REDIS_PREFIX": prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def _rows(url: str) -> dict[str, tuple[bytes, str | None]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"SELECT kid, private_key_encrypted, kek_id FROM {SCHEMA}.signing_keys")
    finally:
        await conn.close()
    return {r["kid"]: (bytes(r["private_key_encrypted"]), r["kek_id"]) for r in rows}


async def _audit(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            f"SELECT details::text AS details FROM {SCHEMA}.audit_events WHERE event = 'keys.rewrapped'"
        )
    finally:
        await conn.close()
    return [json.loads(r["details"]) for r in rows]


def _sign(registry: Registry) -> str:
    return registry.access_tokens.sign(
        registry.access_tokens.prepare(), subject="s", client_id="c", scope=("photos:read",)
    )


async def _verify_with_jwks(http: TestClient, registry: Registry, token: str) -> dict[str, Any]:
    """As a resource server does: the key named by the token's kid, from the published JWKS."""
    published = (await (await http.get("/oauth2/jwks")).json())["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in published if k["kid"] == kid)
    claims: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(jwk),
        algorithms=[jwk["alg"]],
        audience=registry.settings.access_token_audience,
        issuer=registry.settings.issuer,
    )
    return claims


async def test_rotating_the_key_encryption_key(
    aiohttp_client: AppFactory, own_db: str, backing: Services, redis_prefix: str
) -> None:
    # --- every key wrapped under A, each row recording A's id
    under_a = await aiohttp_client(create_app(_settings(own_db, backing, redis_prefix, KEK_A)))
    registry_a = under_a.app[REGISTRY]
    await keys.rotate(registry_a, prepublication=0, alg="RS256")  # beside the first ES256 and RS256 keys
    await keys.rotate(registry_a, prepublication=3600)  # a "next" key, published but not signing yet
    await keys.reload(registry_a)
    before = await _rows(own_db)
    assert len(before) == 4 and {kek for _, kek in before.values()} == {ID_A}
    # one of them stored before key versions were recorded (migration 006 leaves such rows NULL)
    legacy_kid = sorted(before)[0]
    conn = await asyncpg.connect(own_db)
    try:
        await conn.execute(f"UPDATE {SCHEMA}.signing_keys SET kek_id = NULL WHERE kid = $1", legacy_kid)
    finally:
        await conn.close()
    token_a = _sign(registry_a)
    jwks_a = (await (await under_a.get("/oauth2/jwks")).json())["keys"]

    # --- deployed with B current and A previous: everything loads, signs and verifies
    during = await aiohttp_client(create_app(_settings(own_db, backing, redis_prefix, KEK_B, KEK_A)))
    registry_ab = during.app[REGISTRY]
    assert (await (await during.get("/oauth2/jwks")).json())["keys"] == jwks_a
    assert (await _verify_with_jwks(during, registry_ab, token_a))["sub"] == "s"
    assert await registry_ab.access_tokens.verify(token_a, audience=None) is not None
    assert (await _verify_with_jwks(during, registry_ab, _sign(registry_ab)))["sub"] == "s"
    assert (await (await during.get("/readyz")).json())["status"] == "ready"
    # a key made now is wrapped under B
    made_during = await keys.rotate(registry_ab, prepublication=3600)
    assert (await _rows(own_db))[made_during.kid][1] == ID_B

    # --- tessera keys rewrap: every key not under B is moved to it, in one go
    result = _tessera(own_db, backing, redis_prefix, KEK_B, KEK_A, "keys", "rewrap")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kek_id"] == ID_B
    assert sorted(report["rewrapped"]) == sorted(before)
    assert report["unchanged"] == [made_during.kid]
    assert report["rewrapped_from"] == {ID_A: 4}  # the legacy row too was opened by A
    assert f"rewrapped 4 signing key(s) under key-encryption key {ID_B}" in result.stderr
    after = await _rows(own_db)
    assert {kek for _, kek in after.values()} == {ID_B}
    for kid, (blob, _) in before.items():
        assert after[kid][0] != blob
        assert KeyEncryption(_raw(KEK_B)).decrypt(after[kid][0], kid, ID_B)
    # audited, without key material: ids and counts only
    (event,) = await _audit(own_db)
    assert event == {
        "kek_id": ID_B,
        "count": 4,
        "kids": report["rewrapped"],
        "rewrapped_from": {ID_A: 4},
    }
    listed = _tessera(own_db, backing, redis_prefix, KEK_B, "", "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert {k["kid"]: k["kek_id"] for k in json.loads(listed.stdout)} == dict.fromkeys(after, ID_B)

    # --- rerunning is a no-op: nothing re-encrypted, nothing audited
    again = _tessera(own_db, backing, redis_prefix, KEK_B, KEK_A, "keys", "rewrap")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rewrapped"] == []
    assert sorted(json.loads(again.stdout)["unchanged"]) == sorted(after)
    assert await _rows(own_db) == after
    assert len(await _audit(own_db)) == 1

    # --- B alone: the keys load, the server signs, and tokens from before the rotation verify
    only_b = await aiohttp_client(create_app(_settings(own_db, backing, redis_prefix, KEK_B)))
    registry_b = only_b.app[REGISTRY]
    assert {k["kid"] for k in (await (await only_b.get("/oauth2/jwks")).json())["keys"]} == set(after)
    assert (await _verify_with_jwks(only_b, registry_b, token_a))["sub"] == "s"
    assert await registry_b.access_tokens.verify(token_a, audience=None) is not None
    assert (await _verify_with_jwks(only_b, registry_b, _sign(registry_b)))["sub"] == "s"

    # --- A alone: loading fails, naming a key and the KEK it needs
    runner = web.AppRunner(create_app(_settings(own_db, backing, redis_prefix, KEK_A)))
    try:
        with pytest.raises(SigningKeyUnavailable, match=f"wrapped under key-encryption key {ID_B}"):
            await runner.setup()
    finally:
        await runner.cleanup()
    refused = _tessera(own_db, backing, redis_prefix, KEK_A, "", "keys", "list")
    assert refused.returncode == 2
    assert "TESSERA_KEY_ENCRYPTION_KEYS_PREVIOUS" in refused.stderr and "Traceback" not in refused.stderr
    assert any(f"signing key {kid} cannot be decrypted" in refused.stderr for kid in after)


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded-under-C", "unrecorded"])
async def test_rewrap_changes_nothing_if_any_key_cannot_be_decrypted(
    recorded: bool, aiohttp_client: AppFactory, own_db: str, backing: Services, redis_prefix: str
) -> None:
    http = await aiohttp_client(create_app(_settings(own_db, backing, redis_prefix, KEK_A)))
    await keys.rotate(http.app[REGISTRY], prepublication=0)
    # a key wrapped under C, which the rewrap below is not given
    stray = signing.generate("ES256", KeyEncryption(_raw(KEK_C)), datetime.now(UTC))
    assert stray.kek_id == ID_C
    pool = await db.create_pool(own_db, SCHEMA, min_size=1, max_size=1)
    try:
        await KeyStore(pool).add(stray if recorded else dataclasses.replace(stray, kek_id=None))
    finally:
        await pool.close()
    before = await _rows(own_db)

    result = _tessera(own_db, backing, redis_prefix, KEK_B, KEK_A, "keys", "rewrap")
    assert result.returncode == 2
    assert f"signing key {stray.kid} cannot be decrypted" in result.stderr
    reason = (
        f"wrapped under key-encryption key {ID_C}, which is not configured"
        if recorded
        else (f"none of the configured key-encryption keys ({ID_B} (current), {ID_A}) opens it")
    )
    assert reason in result.stderr
    assert "Nothing was changed" in result.stderr and "Traceback" not in result.stderr
    assert await _rows(own_db) == before  # the keys A opens were not rewrapped either
    assert await _audit(own_db) == []


async def test_kek_id_column_accepts_only_ids(own_db: str) -> None:
    conn = await asyncpg.connect(own_db)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                f"INSERT INTO {SCHEMA}.signing_keys (kid, alg, public_jwk, private_key_encrypted,"
                " activates_at, kek_id) VALUES ('k', 'ES256', '{}', '\\x00', now(), 'not-an-id')"
            )
    finally:
        await conn.close()
