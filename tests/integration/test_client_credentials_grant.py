"""RFC 6749 §4.4: the client credentials grant, the platform's B2B hot path."""

from __future__ import annotations

import jwt
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.registry import Registry
from tests.support.flow import basic
from tests.support.servers import ClientFactory


async def _cc(http: TestClient, client_id: str, secret: str, **extra: str) -> tuple[int, dict[str, str]]:
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **extra}, headers=basic(client_id, secret)
    )
    assert response.headers["Cache-Control"] == "no-store"
    return response.status, await response.json()


async def test_token_is_the_clients_own(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats photos:read")
    assert secret
    status, body = await _cc(http, client.client_id, secret)
    assert status == 200
    assert body["scope"] == "warehouse:stats photos:read"  # all allowed scopes when none is requested
    assert "refresh_token" not in body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == client.client_id
    status, body = await _cc(http, client.client_id, secret, scope="warehouse:stats photos:write")
    assert (status, body["scope"]) == (200, "warehouse:stats")  # requested ∩ allowed


async def test_unknown_scope_is_invalid_scope(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    assert secret
    status, body = await _cc(http, client.client_id, secret, scope="admin")
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_client_must_be_registered_for_it(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client()
    assert secret
    status, body = await _cc(http, client.client_id, secret)
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_public_clients_cannot_use_it(http: TestClient, registry: Registry) -> None:
    # registration refuses it; a record made behind the rules' back is refused at the endpoint too
    client, _ = await registry.clients.create(
        name="SPA",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["photos:read"],
        auth_method="none",
    )
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": client.client_id}
    )
    assert (response.status, (await response.json())["error"]) == (400, "unauthorized_client")


async def test_warm_requests_do_not_query_postgres(
    http: TestClient, new_client: ClientFactory, registry: Registry
) -> None:
    client, secret = await new_client(grant_types=["client_credentials"], scope="warehouse:stats")
    assert secret
    assert (await _cc(http, client.client_id, secret))[0] == 200
    calls = 0
    load = registry.clients.load

    async def counting_load(client_id: str) -> Client | None:
        nonlocal calls
        calls += 1
        return await load(client_id)

    registry.clients.load = counting_load  # type: ignore[method-assign]
    try:
        for _ in range(20):
            assert (await _cc(http, client.client_id, secret))[0] == 200
    finally:
        registry.clients.load = load  # type: ignore[method-assign]
    assert calls == 0
