"""Two replicas sharing one Postgres and one Redis: what one does, the other sees at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import basic
from tests.support.servers import PASSWORD

Factory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def replicas(aiohttp_client: Factory, settings: Settings) -> tuple[TestClient, TestClient]:
    return await aiohttp_client(create_app(settings)), await aiohttp_client(create_app(settings))


def _registry(http: TestClient) -> Registry:
    app: Any = http.app
    registry: Registry = app[REGISTRY]
    return registry


async def test_revocation_through_one_is_seen_by_the_other(
    replicas: tuple[TestClient, TestClient], user: User
) -> None:
    one, two = replicas
    app, app_secret = await _registry(one).clients.create(
        name="App",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    api, api_secret = await _registry(one).clients.create(
        name="API",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
        allow_introspection=True,
    )
    assert app_secret and api_secret
    response = await one.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": user.username, "password": PASSWORD},
        headers=basic(app.client_id, app_secret),
    )
    tokens = await response.json()
    revoked = await two.post(
        "/oauth2/revoke", data={"token": tokens["refresh_token"]}, headers=basic(app.client_id, app_secret)
    )
    assert revoked.status == 200
    response = await one.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(app.client_id, app_secret),
    )
    assert (await response.json())["error"] == "invalid_grant"
    # the access token revoked with the family is inactive at the other replica too
    answer = await (
        await one.post(
            "/oauth2/introspect",
            data={"token": tokens["access_token"]},
            headers=basic(api.client_id, api_secret),
        )
    ).json()
    assert answer == {"active": False}


async def test_lockout_through_one_is_seen_by_the_other(
    replicas: tuple[TestClient, TestClient], user: User
) -> None:
    one, two = replicas
    client, secret = await _registry(one).clients.create(
        name="App",
        redirect_uris=[],
        grant_types=["password"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret
    form = {"grant_type": "password", "username": user.username, "password": "wrong-password"}
    for _ in range(_registry(one).settings.login_max_failures):
        await one.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
    response = await two.post(
        "/oauth2/token", data={**form, "password": PASSWORD}, headers=basic(client.client_id, secret)
    )
    body = await response.json()
    assert body["error"] == "invalid_grant" and "retry later" in body["error_description"]
    assert "Retry-After" in response.headers


async def test_secret_rotation_reaches_the_other_replicas_cache(
    replicas: tuple[TestClient, TestClient],
) -> None:
    one, two = replicas
    client, secret = await _registry(one).clients.create(
        name="Partner",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["warehouse:stats"],
        auth_method="client_secret_basic",
    )
    assert secret
    form = {"grant_type": "client_credentials"}
    # warm both caches
    for replica in replicas:
        assert (
            await replica.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))
        ).status == 200
    new_secret = await _registry(one).clients.rotate_secret(client.client_id)
    assert new_secret
    for _ in range(50):  # the change travels over Redis pub/sub
        status = (await two.post("/oauth2/token", data=form, headers=basic(client.client_id, secret))).status
        if status == 401:
            break
        await asyncio.sleep(0.02)
    assert status == 401
    assert (
        await two.post("/oauth2/token", data=form, headers=basic(client.client_id, new_secret))
    ).status == 200
