"""RFC 6749 §6 with RFC 9700 §4.14: rotation, reuse detection, scope narrowing, grace period."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.crypto import digest
from auth_server.issued import IssuedAccess
from auth_server.refresh_rotation import Rejection
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.refresh_tokens import Refused, Rotated
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, ClientFactory, make_settings


async def _tokens(http: TestClient, client_id: str, secret: str, username: str, scope: str) -> dict[str, Any]:
    code = (await obtain_code(http, authorize_params(client_id, scope=scope), username, PASSWORD))["code"]
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(client_id, secret),
    )
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def _refresh(
    http: TestClient, client_id: str, secret: str, token: str, **extra: str
) -> tuple[int, Any]:
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token, **extra},
        headers=basic(client_id, secret),
    )
    return response.status, await response.json()


async def test_refresh_rotates_the_token(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, secret = await new_client()
    assert secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read")
    status, second = await _refresh(http, client.client_id, secret, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user.subject
    status, _ = await _refresh(http, client.client_id, secret, second["refresh_token"])
    assert status == 200


async def test_reusing_a_rotated_token_revokes_the_family(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, secret = await new_client()
    assert secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read")
    _, second = await _refresh(http, client.client_id, secret, first["refresh_token"])
    status, body = await _refresh(http, client.client_id, secret, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "revoked" in body["error_description"]
    # the legitimate holder's newer token is dead too, and its access token deny-listed
    status, body = await _refresh(http, client.client_id, secret, second["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert await registry.revoked_tokens.is_revoked(claims["jti"], claims["grant_id"])


async def test_scope_may_only_narrow(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, secret = await new_client()
    assert secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read photos:write")
    status, narrowed = await _refresh(
        http, client.client_id, secret, first["refresh_token"], scope="photos:read"
    )
    assert status == 200
    assert narrowed["scope"] == "photos:read"
    # the refresh token keeps the original grant (RFC 6749 §6): the full scope is still available
    status, full = await _refresh(
        http, client.client_id, secret, narrowed["refresh_token"], scope="photos:read photos:write"
    )
    assert (status, full["scope"]) == (200, "photos:read photos:write")
    status, body = await _refresh(
        http, client.client_id, secret, full["refresh_token"], scope="warehouse:stats"
    )
    assert (status, body["error"]) == (400, "invalid_scope")
    # a refused escalation does not spend the token
    status, _ = await _refresh(http, client.client_id, secret, full["refresh_token"])
    assert status == 200


async def test_token_of_another_client_is_refused(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    other, other_secret = await new_client(name="Other")
    assert secret and other_secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read")
    status, body = await _refresh(http, other.client_id, other_secret, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_unknown_token_is_refused(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client()
    assert secret
    status, body = await _refresh(http, client.client_id, secret, "not-a-token")
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_concurrent_uses_give_one_new_pair_and_revoke_the_family(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    assert secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read")
    results = await asyncio.gather(
        *(_refresh(http, client.client_id, secret, first["refresh_token"]) for _ in range(50))
    )
    assert sorted(status for status, _ in results) == [200] + [400] * 49
    (winner,) = [body for status, body in results if status == 200]
    # the losers are reuses: the family is revoked, the winner's new token with it
    status, _ = await _refresh(http, client.client_id, secret, winner["refresh_token"])
    assert status == 400


@pytest.fixture
async def graceful(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    database_url: str,
    settings: Settings,
    redis_prefix: str,
) -> TestClient:
    """The server with a 10-second refresh grace period."""
    config = make_settings(database_url, settings.redis_url or "", redis_prefix, refresh_grace_period=10)
    return await aiohttp_client(create_app(config))


async def test_grace_period_lets_a_lost_response_be_retried(
    graceful: TestClient, user: User, new_client: ClientFactory
) -> None:
    http = graceful
    client, secret = await new_client()
    assert secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read")
    status, lost = await _refresh(http, client.client_id, secret, first["refresh_token"])
    assert status == 200
    status, retried = await _refresh(http, client.client_id, secret, first["refresh_token"])
    assert status == 200, retried
    # the retried response works
    status, latest = await _refresh(http, client.client_id, secret, retried["refresh_token"])
    assert status == 200
    # the lost one was voided: whoever presents it holds a copy the client never saw -> reuse
    status, body = await _refresh(http, client.client_id, secret, lost["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    status, _ = await _refresh(http, client.client_id, secret, latest["refresh_token"])
    assert status == 400


async def test_grace_period_ends_once_the_successor_is_used(
    graceful: TestClient, user: User, new_client: ClientFactory
) -> None:
    http = graceful
    client, secret = await new_client()
    assert secret
    first = await _tokens(http, client.client_id, secret, user.username, "photos:read")
    _, second = await _refresh(http, client.client_id, secret, first["refresh_token"])
    status, _ = await _refresh(http, client.client_id, secret, second["refresh_token"])
    assert status == 200
    # the client evidently received `second`, so presenting `first` again is a reuse, grace or not
    status, body = await _refresh(http, client.client_id, secret, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_purge_removes_dead_families_and_keeps_reuse_detection(
    registry: Registry, new_client: ClientFactory, database_url: str
) -> None:
    """``tessera purge`` deletes a family only when none of its tokens works any more. A stolen token
    rotated on by the attacker keeps its family alive, so the victim's old token still reads as
    reuse (RFC 9700 §4.14.2) however long ago it expired."""
    client, _ = await new_client(grant_types=["password", "refresh_token"])
    store = registry.refresh_tokens

    def access() -> IssuedAccess:
        return IssuedAccess(uuid.uuid4().hex, datetime.now(UTC))

    async def family() -> tuple[str, uuid.UUID]:
        return await store.issue(
            client_id=client.client_id, subject="s", scope=("photos:read",), auth_time=None, access=access()
        )

    (dead, dead_family), (stolen, stolen_family), (live, live_family) = [await family() for _ in range(3)]
    rotated = await store.rotate(
        stolen,
        client_id=client.client_id,
        access=access(),
        requested_scope=None,
        client_scope=client.scope,
        audience=lambda granted: "https://api.example",
    )
    assert isinstance(rotated, Rotated)  # the attacker's successor: alive
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE tessera_auth.refresh_tokens SET expires_at = now() - interval '1 second'"
            " WHERE family_id = $1 OR token_hash = $2",
            dead_family,
            digest(stolen),
        )
        assert await store.purge_expired(batch=1) >= 1  # several batches of one family
        left = {
            row["family_id"]
            for row in await conn.fetch(
                "SELECT family_id FROM tessera_auth.refresh_token_families WHERE family_id = ANY($1::uuid[])",
                [dead_family, stolen_family, live_family],
            )
        }
    finally:
        await conn.close()
    assert left == {stolen_family, live_family}
    assert await store.describe(live) is not None and await store.describe(dead) is None
    replay = await store.rotate(
        stolen,
        client_id=client.client_id,
        access=access(),
        requested_scope=None,
        client_scope=client.scope,
        audience=lambda granted: "https://api.example",
    )
    assert isinstance(replay, Refused) and replay.reason is Rejection.REUSED
    assert not (await store.describe(rotated.refresh_token)).active  # type: ignore[union-attr]
