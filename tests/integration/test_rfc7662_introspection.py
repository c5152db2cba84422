"""RFC 7662: token introspection for clients allowed to introspect."""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from auth_server.stores.users import User
from auth_server.tokens import AccessToken
from tests.support.flow import basic
from tests.support.servers import PASSWORD, ClientFactory


async def _introspect(
    http: TestClient, caller: tuple[str, str], token: str, hint: str | None = None
) -> dict[str, Any]:
    data = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    response = await http.post("/oauth2/introspect", data=data, headers=basic(*caller))
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.json()
    return body


async def _setup(new_client: ClientFactory, registry: Registry) -> tuple[tuple[str, str], tuple[str, str]]:
    app, app_secret = await new_client(grant_types=["password", "refresh_token"])
    resource, resource_secret = await registry.clients.create(
        name="Photo Warehouse API",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["warehouse:stats"],
        auth_method="client_secret_basic",
        allow_introspection=True,
    )
    assert app_secret and resource_secret
    return (app.client_id, app_secret), (resource.client_id, resource_secret)


async def _tokens(http: TestClient, app: tuple[str, str], user: User) -> dict[str, Any]:
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "username": user.username,
            "password": PASSWORD,
            "scope": "photos:read",
        },
        headers=basic(*app),
    )
    body: dict[str, Any] = await response.json()
    return body


async def test_live_access_token(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    app, resource = await _setup(new_client, registry)
    tokens = await _tokens(http, app, user)
    answer = await _introspect(http, resource, tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert answer == {
        "active": True,
        "token_type": "Bearer",
        "scope": "photos:read",
        "client_id": app[0],
        "sub": user.subject,
        "username": user.username,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": "http://localhost:8000",
        "aud": "http://localhost:8000/api",
        "jti": claims["jti"],
    }


async def test_live_refresh_token_and_hint_is_only_a_hint(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    app, resource = await _setup(new_client, registry)
    tokens = await _tokens(http, app, user)
    for hint in (None, "refresh_token", "access_token"):
        answer = await _introspect(http, resource, tokens["refresh_token"], hint)
        assert answer["active"] is True
        assert answer["token_type"] == "refresh_token"
        assert (answer["client_id"], answer["sub"], answer["username"]) == (
            app[0],
            user.subject,
            user.username,
        )
        assert answer["exp"] > answer["iat"]


async def test_dead_tokens_are_inactive_and_say_nothing_more(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    app, resource = await _setup(new_client, registry)
    tokens = await _tokens(http, app, user)
    # rotated refresh token
    rotated = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(*app),
    )
    fresh = await rotated.json()
    assert await _introspect(http, resource, tokens["refresh_token"]) == {"active": False}
    # revoked access token
    await http.post("/oauth2/revoke", data={"token": fresh["access_token"]}, headers=basic(*app))
    assert await _introspect(http, resource, fresh["access_token"]) == {"active": False}
    # malformed, and foreign (signed by someone else)
    assert await _introspect(http, resource, "garbage") == {"active": False}
    foreign = jwt.encode(
        {"sub": "x", "exp": 4102444800}, "not-our-key-at-all-0123456789abcdef", algorithm="HS256"
    )
    assert await _introspect(http, resource, foreign) == {"active": False}
    # tampered: our header and signature, another payload
    head, _, sig = tokens["access_token"].split(".")
    payload = jwt.utils.base64url_encode(b'{"sub":"admin"}').decode()
    assert await _introspect(http, resource, f"{head}.{payload}.{sig}") == {"active": False}


async def test_expired_access_token_is_inactive(
    http: TestClient, new_client: ClientFactory, registry: Registry
) -> None:
    _, resource = await _setup(new_client, registry)
    issuer = registry.access_tokens
    expired = AccessToken(jti="expired-jti", issued_at=1_000_000, expires_at=1_000_600)
    token = issuer.sign(expired, subject="s", client_id="c", scope=("photos:read",))
    assert await _introspect(http, resource, token) == {"active": False}


async def test_client_credentials_token_has_no_username(
    http: TestClient, new_client: ClientFactory, registry: Registry
) -> None:
    _, resource = await _setup(new_client, registry)
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(*resource)
    )
    token = (await response.json())["access_token"]
    answer = await _introspect(http, resource, token)
    assert answer["active"] is True and answer["sub"] == resource[0] and "username" not in answer


async def test_only_permitted_clients_may_introspect(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    app, _ = await _setup(new_client, registry)
    tokens = await _tokens(http, app, user)
    response = await http.post(
        "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=basic(*app)
    )
    assert (response.status, (await response.json())["error"]) == (400, "unauthorized_client")
    response = await http.post("/oauth2/introspect", data={"token": tokens["access_token"]})
    assert response.status == 401
