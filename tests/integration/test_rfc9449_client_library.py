"""RFC 9449 in practice: a standard client library's DPoP against Tessera and the Photo Warehouse.

panva's oauth4webapi (npm; the version pinned in ``tests/support/oauth4webapi/package-lock.json``,
installed with ``npm ci`` the first time) runs as a public client (its ``dpop_flow.mjs``): it finds
everything in the metadata, asks for a code bound to its key (``dpop_jkt``, §10), redeems it with
a proof, retrying with the server's nonce when told to (``use_dpop_nonce``, §8: the server here
requires nonces), calls the warehouse with the bound token (§7), refreshes with the same key (§5),
is refused a refresh with another key, and parses the challenges the warehouse answers the token
with when it is sent as a bearer token (§7.2). This test plays the user's browser in between.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from redis.asyncio import Redis

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from resource_server.app import create_app as create_resource_app
from resource_server.settings import ResourceSettings
from tests.support.flow import REDIRECT_URI, obtain_code
from tests.support.oauth4webapi_client import command as oauth4webapi_command
from tests.support.servers import PASSWORD, free_port, make_settings
from tests.support.services import Services


@pytest.fixture(scope="session")
def oauth4webapi() -> list[str]:
    """``node dpop_flow.mjs``, with oauth4webapi installed."""
    return oauth4webapi_command("dpop_flow.mjs")


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def servers(database_url: str, backing: Services) -> AsyncIterator[tuple[str, Registry, str]]:
    """Tessera requiring DPoP nonces, and the warehouse, each on a loopback port of its own."""
    auth_port, warehouse_port = free_port(), free_port()
    issuer, warehouse = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{warehouse_port}"
    prefix = f"tessera-test-dpop-{uuid.uuid4().hex[:8]}:"
    settings = make_settings(database_url, backing.redis_url, prefix, issuer=issuer, dpop_nonce="on")
    auth_app = create_app(settings)
    auth = await _serve(auth_app, auth_port)
    resource = await _serve(
        create_resource_app(
            ResourceSettings(
                issuer=issuer,
                database_url=database_url,
                audience=settings.access_token_audience,
                resource_url=warehouse,
            )
        ),
        warehouse_port,
    )
    try:
        yield issuer, auth_app[REGISTRY], warehouse
    finally:
        await resource.cleanup()
        await auth.cleanup()
        redis = Redis.from_url(backing.redis_url)
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def _line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    if not raw:
        assert process.stderr is not None
        raise AssertionError(f"the client stopped: {(await process.stderr.read()).decode()}")
    found: dict[str, Any] = json.loads(raw)
    assert "error" not in found, found["error"]
    return found


async def test_oauth4webapi_binds_refreshes_and_calls_the_warehouse_with_dpop(
    oauth4webapi: list[str], servers: tuple[str, Registry, str]
) -> None:
    issuer, registry, warehouse = servers
    client, _ = await registry.clients.create(
        name="TV app",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=["photos:read"],
        auth_method="none",
    )
    user = await registry.users.create(f"u-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    process = await asyncio.create_subprocess_exec(
        *oauth4webapi,
        issuer,
        client.client_id,
        REDIRECT_URI,
        warehouse,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        params = (await _line(process))["authorize"]
        async with aiohttp.ClientSession(
            base_url=issuer, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as browser:
            answer = await obtain_code(browser, params, user.username, PASSWORD)
        assert process.stdin is not None
        callback = f"{REDIRECT_URI}?{'&'.join(f'{k}={v}' for k, v in answer.items())}"
        process.stdin.write(callback.encode() + b"\n")
        await process.stdin.drain()
        results = (await _line(process))["results"]
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()

    assert results["algs"] == ["ES256", "EdDSA", "RS256", "PS256"]
    # the library lower-cases token_type; the token is bound to its key (and the code was, by dpop_jkt)
    assert results["token_type"] == "dpop" and results["refreshed_token_type"] == "dpop"
    for token in (results["access_token"], results["refreshed_access_token"]):
        assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"jkt": results["jkt"]}
    assert results["nonce_retries"] >= 1  # the server asked for its nonce, and the library complied
    assert results["photos_status"] == 200
    assert results["stolen"]["error"] == "invalid_grant"
    assert results["again_token_type"] == "dpop"  # the thief's attempt spent nothing
    bearer = results["bearer"]
    assert bearer["status"] == 401
    by_scheme = {c["scheme"]: c["parameters"] for c in bearer["challenges"]}
    assert by_scheme["bearer"]["error"] == "invalid_token"
    assert by_scheme["dpop"]["algs"] == "ES256 EdDSA RS256 PS256"
