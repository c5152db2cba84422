"""The open platform's rules about a client under review (issue 15, "Rules"): a pending, rejected or
suspended client gets an error page at /authorize (never a redirect) and ``unauthorized_client`` at
the token endpoint; suspension stops client_credentials and refreshes at once on every replica and
revokes the refresh tokens; the CLI's review commands and the admin role."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient

from auth_server import platform
from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, TEST_KEK, ClientFactory
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]
CREDENTIALS = {"grant_type": "client_credentials"}


def registry_of(http: TestClient) -> Registry:
    app: Any = http.app
    registry: Registry = app[REGISTRY]
    return registry


@pytest.fixture
async def replicas(aiohttp_client: Factory, settings: Settings) -> tuple[TestClient, TestClient]:
    """Two app instances sharing one Postgres and one Redis."""
    return await aiohttp_client(create_app(settings)), await aiohttp_client(create_app(settings))


async def machine(registry: Registry, status: str = "approved") -> tuple[str, str]:
    client, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Stats job",
            redirect_uris=(),
            grant_types=("client_credentials",),
            scope=("photos:read",),
            status=status,
        ),
    )
    assert secret is not None
    return client.client_id, secret


async def eventually(status_of: Callable[[], Awaitable[int]], expected: int) -> int:
    """The status once a change has travelled over Redis pub/sub (a few milliseconds)."""
    status = 0
    for _ in range(50):
        status = await status_of()
        if status == expected:
            break
        await asyncio.sleep(0.02)
    return status


@pytest.mark.parametrize("status", ["pending", "rejected", "suspended"])
async def test_an_unapproved_client_gets_an_error_page_and_unauthorized_client(
    http: TestClient, new_client: ClientFactory, registry: Registry, status: str
) -> None:
    client, secret = await new_client(status=status)
    assert secret is not None
    response = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}", allow_redirects=False
    )
    assert response.status == 400 and "Location" not in response.headers
    assert "text/html" in response.headers["Content-Type"]
    token = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": client.redirect_uris[0]},
        headers=basic(client.client_id, secret),
    )
    assert token.status == 400 and (await token.json())["error"] == "unauthorized_client"


async def test_suspension_stops_client_credentials_at_once_on_another_replica(
    replicas: tuple[TestClient, TestClient],
) -> None:
    one, two = replicas
    client_id, secret = await machine(registry_of(one))
    for replica in replicas:  # both caches hold the approved client
        assert (
            await replica.post("/oauth2/token", data=CREDENTIALS, headers=basic(client_id, secret))
        ).status == 200
    await platform.suspend(registry_of(one), client_id, "Abuse report")

    async def on_two() -> int:
        return (await two.post("/oauth2/token", data=CREDENTIALS, headers=basic(client_id, secret))).status

    assert await eventually(on_two, 400) == 400
    refused = await two.post("/oauth2/token", data=CREDENTIALS, headers=basic(client_id, secret))
    assert (await refused.json())["error"] == "unauthorized_client"
    await platform.reinstate(registry_of(two), client_id)
    assert await eventually(on_two, 200) == 200


async def test_suspension_revokes_refresh_tokens_and_stops_refreshes_on_another_replica(
    replicas: tuple[TestClient, TestClient], user: User
) -> None:
    one, two = replicas
    registry = registry_of(one)
    client, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name="Photo Printer",
            redirect_uris=("https://printer.example/callback",),
            grant_types=("authorization_code", "refresh_token"),
            scope=("photos:read",),
            require_pkce=False,
        ),
    )
    assert secret is not None
    query = await obtain_code(one, authorize_params(client.client_id), user.username, PASSWORD)
    tokens = await (
        await one.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": client.redirect_uris[0],
            },
            headers=basic(client.client_id, secret),
        )
    ).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    await platform.suspend(registry, client.client_id, "Leaked secret")

    async def refresh_on_two() -> int:
        return (await two.post("/oauth2/token", data=refresh, headers=basic(client.client_id, secret))).status

    assert await eventually(refresh_on_two, 400) == 400
    answer = await two.post("/oauth2/token", data=refresh, headers=basic(client.client_id, secret))
    assert (await answer.json())["error"] == "unauthorized_client"
    await platform.reinstate(registry, client.client_id)
    await asyncio.sleep(0.1)
    again = await two.post("/oauth2/token", data=refresh, headers=basic(client.client_id, secret))
    assert (await again.json())["error"] == "invalid_grant"  # the suspension revoked the family for good
    events = [e.event for e in await registry.audit.for_client(client.client_id)]
    assert events[:2] == ["client.reinstated", "client.suspended"]


async def test_decisions_that_do_not_fit_the_state_are_refused(registry: Registry) -> None:
    client_id, _ = await machine(registry, status="pending")
    with pytest.raises(platform.ReviewError):
        await platform.suspend(registry, client_id, "no")
    with pytest.raises(platform.ReviewError):
        await platform.reinstate(registry, client_id)
    await platform.reject(registry, client_id, "Not enough detail")
    with pytest.raises(platform.ReviewError):
        await platform.approve(registry, client_id)


async def test_a_refused_change_leaves_the_approved_settings(
    new_client: ClientFactory, registry: Registry
) -> None:
    client, _ = await new_client(scope="photos:read")
    await registry.clients.set_pending_changes(client.client_id, {"scope": ["photos:read", "photos:write"]})
    refused = await platform.reject(registry, client.client_id, "Printing needs no write access")
    assert refused.status == "approved" and refused.scope == ("photos:read",)
    assert refused.pending_changes is None and refused.review_note == "Printing needs no write access"


def tessera(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_the_cli_reviews_clients_and_grants_the_admin_role(
    database_url: str, backing: Services, redis_prefix: str, registry: Registry
) -> None:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }
    client_id, _ = await machine(registry, status="pending")
    wrong = tessera(env, "client", "suspend", client_id, "--reason", "x")
    assert wrong.returncode != 0 and wrong.stderr.strip().count("\n") == 0
    assert "pending; only an approved one can be suspended" in wrong.stderr
    assert tessera(env, "client", "reject", client_id).returncode != 0  # --reason is required
    approved = tessera(env, "client", "approve", client_id)
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "approved"
    suspended = tessera(env, "client", "suspend", client_id, "--reason", "Abuse report")
    assert json.loads(suspended.stdout) == {
        "client_id": client_id,
        "status": "suspended",
        "review_note": "Abuse report",
    }
    assert json.loads(tessera(env, "client", "reinstate", client_id).stdout)["status"] == "approved"
    again = tessera(env, "client", "reinstate", client_id)
    assert again.returncode != 0 and "not suspended" in again.stderr
    pending_id, _ = await machine(registry, status="pending")
    rejected = tessera(env, "client", "reject", pending_id, "--reason", "No privacy policy")
    assert json.loads(rejected.stdout)["review_note"] == "No privacy policy"

    name = f"operator-{uuid.uuid4().hex[:8]}"
    created = tessera(
        env, "user", "create", "--username", name, "--password-stdin", "--admin", stdin=PASSWORD
    )
    assert created.returncode == 0, created.stderr
    user = await registry.users.by_username(name)
    assert user is not None and await registry.users.is_admin(user.user_id)
    taken = tessera(env, "user", "update", name, "--admin", "no")
    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["admin"] is False
    assert not await registry.users.is_admin(user.user_id)
    assert json.loads(tessera(env, "user", "update", name, "--admin", "yes").stdout)["admin"] is True
    assert await registry.users.is_admin(user.user_id)
