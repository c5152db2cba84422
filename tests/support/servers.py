"""The servers under test: their settings, the test user's password, the types of the fixtures
that create clients and apps, and an authorization server on a real loopback port."""

from __future__ import annotations

import collections
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.settings import Settings

TEST_KEK = "q5gFjL0Vd8H0b8bJ5xO3e1iE0P6m0Q2j4cQK0Hk7zYI"  # base64 of 32 bytes, tests only
PASSWORD = "correct horse battery staple"


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


ClientFactory = Callable[..., Awaitable[tuple[Client, str | None]]]

AppFactory = Callable[..., Awaitable[TestClient]]


def registry_of(http: TestClient) -> Registry:
    app: web.Application | None = http.app
    assert app is not None
    return app[REGISTRY]


# the ports handed out lately: the kernel may hand one out again once its socket is closed, and a
# test starting several servers would then start two on one port (seen in CI)
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=512)


def free_port() -> int:
    """A free loopback port, none of the last 512 this process handed out."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    registry: Registry


@contextlib.asynccontextmanager
async def running_auth_server(
    database_url: str, redis_url: str, prefix: str, **overrides: Any
) -> AsyncIterator[tuple[LiveServer, web.AppRunner]]:
    """The authorization server on a real loopback port, its issuer the URL it is reached at;
    ``overrides``: more settings, as for :func:`make_settings`.

    The runner is handed out too, so a test can stop the server early (``await runner.cleanup()``).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    live = make_settings(database_url, redis_url, prefix, issuer=url, **overrides)
    app = create_app(live)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield LiveServer(url, live, app[REGISTRY]), runner
    finally:
        await runner.cleanup()
