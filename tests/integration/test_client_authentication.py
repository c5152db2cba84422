"""RFC 6749 §2.3 and §5.2 at the token endpoint: client authentication and error rendering."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from tests.support.flow import basic
from tests.support.servers import ClientFactory


async def _token(
    http: TestClient, data: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, str]]:
    response = await http.post("/oauth2/token", data=data, headers=headers or {})
    return response.status, await response.json(), dict(response.headers)


async def test_wrong_secret_is_invalid_client_with_a_challenge(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, _ = await new_client()
    status, body, headers = await _token(
        http, {"grant_type": "authorization_code", "code": "x"}, basic(client.client_id, "wrong")
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert headers["Cache-Control"] == "no-store"


async def test_unknown_client_looks_like_a_wrong_secret(http: TestClient) -> None:
    status, body, _ = await _token(
        http, {"grant_type": "authorization_code", "code": "x"}, basic("nobody", "s")
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert body["error_description"] == "Client authentication failed: unknown client or wrong credentials."


async def test_basic_credentials_are_form_decoded(http: TestClient, registry: Registry) -> None:
    """RFC 6749 §2.3.1: id and secret are form-encoded before Basic; a secret with '+' or ':' must survive."""
    client, secret = await registry.clients.create(
        name="x",
        redirect_uris=["https://a.example/cb"],
        grant_types=["authorization_code"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret
    raw = f"{quote_plus(client.client_id)}:{quote_plus(secret)}".encode()
    header = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    status, body, _ = await _token(http, {"grant_type": "authorization_code", "code": "nope"}, header)
    # authenticated fine; the code is what fails
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_client_secret_post_is_refused_for_a_basic_client(
    http: TestClient, new_client: ClientFactory
) -> None:
    client, secret = await new_client()
    assert secret
    status, body, _ = await _token(
        http,
        {
            "grant_type": "authorization_code",
            "code": "x",
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    assert (status, body["error"]) == (401, "invalid_client")
    # the same answer as a wrong secret: nothing reveals how the client authenticates
    assert body["error_description"] == "Client authentication failed: unknown client or wrong credentials."


async def test_client_secret_post_client(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client(auth_method="client_secret_post")
    assert secret
    status, body, _ = await _token(
        http,
        {
            "grant_type": "authorization_code",
            "code": "x",
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_confidential_client_cannot_pose_as_public(http: TestClient, new_client: ClientFactory) -> None:
    client, _ = await new_client()
    status, body, _ = await _token(
        http, {"grant_type": "authorization_code", "code": "x", "client_id": client.client_id}
    )
    assert (status, body["error"]) == (401, "invalid_client")


async def test_two_methods_at_once_are_refused(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client()
    assert secret
    status, body, _ = await _token(
        http,
        {"grant_type": "authorization_code", "code": "x", "client_secret": secret},
        basic(client.client_id, secret),
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_no_authentication_at_all(http: TestClient) -> None:
    status, body, _ = await _token(http, {"grant_type": "authorization_code", "code": "x"})
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    "header", ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer abc"]
)
async def test_malformed_authorization_header(http: TestClient, header: str) -> None:
    status, body, _ = await _token(http, {"grant_type": "authorization_code"}, {"Authorization": header})
    assert (status, body["error"]) == (401, "invalid_client")


async def test_unsupported_and_unauthorized_grant_types(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client(grant_types=["authorization_code"])
    assert secret
    status, body, _ = await _token(http, {"grant_type": "urn:example:magic"}, basic(client.client_id, secret))
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body, _ = await _token(
        http, {"grant_type": "refresh_token", "refresh_token": "x"}, basic(client.client_id, secret)
    )
    assert (status, body["error"]) == (400, "unauthorized_client")
    status, body, _ = await _token(http, {"code": "x"}, basic(client.client_id, secret))
    assert (status, body["error"]) == (400, "invalid_request")


async def test_malformed_bodies_are_invalid_request(http: TestClient, new_client: ClientFactory) -> None:
    client, secret = await new_client()
    assert secret
    auth = basic(client.client_id, secret)
    cases = [
        (b"grant_type=authorization_code&grant_type=refresh_token", "application/x-www-form-urlencoded", 400),
        (b"grant_type=\xff\xfe", "application/x-www-form-urlencoded", 400),
        (b'{"grant_type": "authorization_code"}', "application/json", 400),
        (b"grant_type=" + b"a" * 70000, "application/x-www-form-urlencoded", 413),
    ]
    for body, content_type, expected in cases:
        response = await http.post("/oauth2/token", data=body, headers={**auth, "Content-Type": content_type})
        assert response.status == expected, body[:40]
        assert (await response.json())["error"] == "invalid_request"
