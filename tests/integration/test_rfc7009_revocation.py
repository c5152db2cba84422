"""RFC 7009: token revocation by the client the token was issued to."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import basic
from tests.support.servers import PASSWORD, ClientFactory


async def _password_tokens(http: TestClient, client_id: str, secret: str, user: User) -> dict[str, Any]:
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": user.username, "password": PASSWORD},
        headers=basic(client_id, secret),
    )
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def _revoke(http: TestClient, client_id: str, secret: str, token: str, hint: str | None = None) -> int:
    data = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    response = await http.post("/oauth2/revoke", data=data, headers=basic(client_id, secret))
    assert response.headers["Cache-Control"] == "no-store"
    return response.status


async def _introspect(http: TestClient, introspector: tuple[str, str], token: str) -> dict[str, Any]:
    response = await http.post("/oauth2/introspect", data={"token": token}, headers=basic(*introspector))
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def _clients(new_client: ClientFactory) -> tuple[tuple[str, str], tuple[str, str]]:
    app, app_secret = await new_client(grant_types=["password", "refresh_token"])
    api, api_secret = await new_client(name="API", grant_types=["client_credentials"])
    assert app_secret and api_secret
    return (app.client_id, app_secret), (api.client_id, api_secret)


async def test_revoking_a_refresh_token_revokes_its_family(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    (app_id, app_secret), _ = await _clients(new_client)
    tokens = await _password_tokens(http, app_id, app_secret, user)
    assert await _revoke(http, app_id, app_secret, tokens["refresh_token"], "refresh_token") == 200
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(app_id, app_secret),
    )
    assert (await response.json())["error"] == "invalid_grant"
    # the access token issued alongside is deny-listed too (§2.1)
    # (by the grant it was issued from: one entry for the whole family)
    claims = await registry.access_tokens.verify(tokens["access_token"], audience=None)
    assert claims is not None and await registry.revoked_tokens.is_revoked(claims["jti"], claims["grant_id"])
    assert not await registry.revoked_tokens.is_revoked(claims["jti"])


async def test_revoking_an_access_token_deny_lists_it(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    (app_id, app_secret), _ = await _clients(new_client)
    tokens = await _password_tokens(http, app_id, app_secret, user)
    # a wrong hint is only a hint
    assert await _revoke(http, app_id, app_secret, tokens["access_token"], "refresh_token") == 200
    claims = await registry.access_tokens.verify(tokens["access_token"], audience=None)
    assert claims is not None and await registry.revoked_tokens.is_revoked(claims["jti"])
    # the refresh token is untouched
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(app_id, app_secret),
    )
    assert response.status == 200


async def test_unknown_and_repeated_revocations_answer_200(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    (app_id, app_secret), _ = await _clients(new_client)
    assert await _revoke(http, app_id, app_secret, "no-such-token") == 200
    tokens = await _password_tokens(http, app_id, app_secret, user)
    assert await _revoke(http, app_id, app_secret, tokens["refresh_token"]) == 200
    assert await _revoke(http, app_id, app_secret, tokens["refresh_token"]) == 200


async def test_a_client_cannot_revoke_another_clients_tokens(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    (app_id, app_secret), (api_id, api_secret) = await _clients(new_client)
    tokens = await _password_tokens(http, app_id, app_secret, user)
    assert await _revoke(http, api_id, api_secret, tokens["refresh_token"]) == 200
    assert await _revoke(http, api_id, api_secret, tokens["access_token"]) == 200
    claims = await registry.access_tokens.verify(tokens["access_token"], audience=None)
    assert claims is not None
    assert not await registry.revoked_tokens.is_revoked(claims["jti"], claims["grant_id"])
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(app_id, app_secret),
    )
    assert response.status == 200


async def test_revocation_requires_client_authentication(http: TestClient) -> None:
    response = await http.post("/oauth2/revoke", data={"token": "x"})
    assert (response.status, (await response.json())["error"]) == (401, "invalid_client")
    response = await http.post("/oauth2/revoke", data={"token": "x"}, headers=basic("nobody", "nothing"))
    assert response.status == 401


async def test_token_parameter_is_required(http: TestClient, new_client: ClientFactory) -> None:
    (app_id, app_secret), _ = await _clients(new_client)
    response = await http.post("/oauth2/revoke", data={}, headers=basic(app_id, app_secret))
    assert (response.status, (await response.json())["error"]) == (400, "invalid_request")
