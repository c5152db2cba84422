"""RFC 6749 §4.3: resource owner password credentials, with brute-force protection in Redis."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import basic, hidden
from tests.support.servers import PASSWORD, ClientFactory, make_settings


async def _password(
    http: TestClient, client_id: str, secret: str | None, username: str, password: str, **extra: str
) -> tuple[int, dict[str, str], dict[str, str]]:
    data = {"grant_type": "password", "username": username, "password": password, **extra}
    headers = basic(client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = client_id
    response = await http.post("/oauth2/token", data=data, headers=headers)
    return response.status, await response.json(), dict(response.headers)


@pytest.fixture
async def first_party(new_client: ClientFactory) -> tuple[str, str]:
    client, secret = await new_client(name="Photo Warehouse app", grant_types=["password", "refresh_token"])
    assert secret
    return client.client_id, secret


async def test_password_grant_issues_access_and_refresh(
    http: TestClient, first_party: tuple[str, str], user: User
) -> None:
    status, body, headers = await _password(http, *first_party, user.username, PASSWORD, scope="photos:read")
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert body["refresh_token"] and body["scope"] == "photos:read"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["sub"] == user.subject


async def test_wrong_password_and_unknown_user_are_the_same_invalid_grant(
    http: TestClient, first_party: tuple[str, str], user: User
) -> None:
    wrong = await _password(http, *first_party, user.username, "not-the-password")
    unknown = await _password(http, *first_party, f"ghost-{uuid.uuid4().hex}", "not-the-password")
    assert wrong[:2] == unknown[:2]
    assert wrong[0] == 400 and wrong[1]["error"] == "invalid_grant"


async def test_only_registered_clients_may_use_it(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    status, body, _ = await _password(http, client.client_id, secret, user.username, PASSWORD)
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_missing_credentials_are_invalid_request(
    http: TestClient, first_party: tuple[str, str]
) -> None:
    response = await http.post(
        "/oauth2/token", data={"grant_type": "password", "username": "x"}, headers=basic(*first_party)
    )
    assert (await response.json())["error"] == "invalid_request"


async def test_username_is_locked_after_repeated_failures(
    http: TestClient, first_party: tuple[str, str], user: User, registry: Registry
) -> None:
    limit = registry.settings.login_max_failures
    for _ in range(limit):
        status, body, _ = await _password(http, *first_party, user.username, "wrong-password")
        assert body["error"] == "invalid_grant" and "Retry" not in body["error_description"]
    # now even the right password is refused until the window passes
    status, body, headers = await _password(http, *first_party, user.username, PASSWORD)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "retry later" in body["error_description"]
    assert 0 < int(headers["Retry-After"]) <= registry.settings.login_lockout_window


async def test_success_resets_the_username_count(
    http: TestClient, first_party: tuple[str, str], user: User, registry: Registry
) -> None:
    limit = registry.settings.login_max_failures
    for _ in range(limit - 1):
        await _password(http, *first_party, user.username, "wrong-password")
    assert (await _password(http, *first_party, user.username, PASSWORD))[0] == 200
    for _ in range(limit - 1):
        await _password(http, *first_party, user.username, "wrong-password")
    assert (await _password(http, *first_party, user.username, PASSWORD))[0] == 200


async def test_login_page_shares_the_lockout(
    http: TestClient, first_party: tuple[str, str], user: User, registry: Registry
) -> None:
    for _ in range(registry.settings.login_max_failures):
        await _password(http, *first_party, user.username, "wrong-password")
    page = await (await http.get("/login")).text()
    response = await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
        allow_redirects=False,
    )
    assert response.status == 429
    assert "Too many failed sign-in attempts" in await response.text()
    assert int(response.headers["Retry-After"]) > 0


async def test_the_password_never_reaches_the_logs(
    http: TestClient, first_party: tuple[str, str], user: User, caplog: pytest.LogCaptureFixture
) -> None:
    secret_password = f"hunter2-{uuid.uuid4().hex}"
    with caplog.at_level(logging.DEBUG):
        await _password(http, *first_party, user.username, secret_password)
        status, body, _ = await _password(http, *first_party, user.username, PASSWORD)
    assert status == 200
    text = caplog.text
    for secret in (secret_password, PASSWORD, first_party[1], body["access_token"], body["refresh_token"]):
        assert secret not in text


async def test_an_ip_is_locked_after_failures_across_usernames(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    database_url: str,
    settings: Settings,
    new_client: ClientFactory,
    user: User,
) -> None:
    # its own key prefix, so this IP's count starts at zero and touches no other test
    isolated = make_settings(
        database_url,
        settings.redis_url or "",
        f"tessera-test-ip-{uuid.uuid4().hex[:8]}:",
        login_max_failures_per_ip=3,
    )
    http = await aiohttp_client(create_app(isolated))
    client, secret = await new_client(grant_types=["password"])
    assert secret
    try:
        for n in range(3):
            status, body, _ = await _password(http, client.client_id, secret, f"someone-{n}", "guess")
            assert "retry later" not in body["error_description"]
        status, body, headers = await _password(http, client.client_id, secret, user.username, PASSWORD)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert "retry later" in body["error_description"] and int(headers["Retry-After"]) > 0
    finally:
        registry = http.app[REGISTRY]
        redis = registry.codes._redis
        async for key in redis.scan_iter(match=f"{isolated.redis_prefix}*"):
            await redis.delete(key)
