"""Redis stopped mid-flow: clear 503s (or a redirected temporarily_unavailable), then recovery
without a restart as soon as Redis is back."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from auth_server.app import create_app
from auth_server.stores.users import User
from shared.redis import create_redis
from tests.integration.test_redis_deployments import _redis_server
from tests.support.flow import REDIRECT_URI, authorize_params, basic, obtain_code, query_of
from tests.support.servers import PASSWORD, ClientFactory, free_port, make_settings

Factory = Callable[..., Awaitable[TestClient]]


class RedisProcess:
    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                _redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition never met")


async def test_redis_outage_gives_503_and_recovers_without_restart(
    aiohttp_client: Factory,
    redis_process: RedisProcess,
    database_url: str,
    new_client: ClientFactory,
    user: User,
) -> None:
    settings = make_settings(database_url, f"redis://127.0.0.1:{redis_process.port}/0", "outage:")
    http = await aiohttp_client(create_app(settings))
    client, secret = await new_client()
    assert secret

    async def ready() -> bool:
        return (await http.get("/readyz")).status == 200

    await _until(ready)
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]

    redis_process.stop()
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 503
    assert (await response.json())["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"] and response.headers["Cache-Control"] == "no-store"
    # at /authorize, once the redirect URI is verified, the error goes back to the client (§4.1.2.1)
    authorize = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}", allow_redirects=False
    )
    assert authorize.status == 302
    assert query_of(authorize.headers["Location"])["error"] == "temporarily_unavailable"
    assert (await http.get("/readyz")).status == 503
    assert (await http.get("/healthz")).status == 200  # the process stays up

    redis_process.start()  # Redis is back (empty: the code from before is gone)
    await _until(ready)
    fresh = await obtain_code(
        http, authorize_params(client.client_id, state="after"), user.username, PASSWORD
    )
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": fresh["code"], "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200, await response.text()


async def test_pooled_connections_survive_a_redis_restart(redis_process: RedisProcess) -> None:
    """Every connection pooled before a restart is dead after it; none may cost a request a 503."""
    client = create_redis(f"redis://127.0.0.1:{redis_process.port}/0")
    try:
        await _until(lambda: _answers(client))
        await asyncio.gather(*(client.set(f"k{i}", b"v") for i in range(30)))  # 30 pooled connections
        redis_process.stop()
        redis_process.start()
        fresh = create_redis(f"redis://127.0.0.1:{redis_process.port}/0")
        try:
            await _until(lambda: _answers(fresh))
        finally:
            await fresh.aclose()
        answers = await asyncio.gather(*(client.get(f"k{i}") for i in range(30)), return_exceptions=True)
        assert [a for a in answers if isinstance(a, BaseException)] == []
    finally:
        await client.aclose()


async def _answers(client: Any) -> bool:
    try:
        return bool(await client.ping())
    except (ConnectionError, OSError, RedisConnectionError):
        return False
