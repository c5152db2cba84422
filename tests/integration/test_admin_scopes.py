"""The admin API's scopes reach only administrators, whoever the client (issue 15)."""

from __future__ import annotations

import jwt
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import Pkce, authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, ClientFactory


async def _granted_scope(http: TestClient, client_id: str, secret: str, user: User) -> list[str]:
    pkce = Pkce.new()
    params = authorize_params(client_id, pkce=pkce, scope="photos:read admin:read")
    answer = await obtain_code(http, params, user.username, PASSWORD)
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": params["redirect_uri"],
            "code_verifier": pkce.verifier,
        },
        headers=basic(client_id, secret),
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["scope"] == body["scope"]
    return str(body["scope"]).split()


async def test_a_user_who_is_no_admin_is_never_granted_an_admin_scope(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client(scope="photos:read admin:read")
    assert secret is not None
    assert await _granted_scope(http, client.client_id, secret, user) == ["photos:read"]


async def test_an_admin_is_granted_the_admin_scope_the_client_asks_for(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    await registry.users.set_admin(user.user_id, True)
    client, secret = await new_client(scope="photos:read admin:read")
    assert secret is not None
    assert await _granted_scope(http, client.client_id, secret, user) == ["photos:read", "admin:read"]


async def test_the_password_grant_drops_admin_scopes_for_a_user_who_is_no_admin(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client(grant_types=["password"], scope="photos:read admin:read")
    assert secret is not None
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": user.username, "password": PASSWORD},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["scope"] == "photos:read"
