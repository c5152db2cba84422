"""RFC 6749 §4.1 with RFC 7636 and RFC 9700: the authorization code grant through the real app."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import jwt
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, obtain_code
from tests.support.servers import PASSWORD, ClientFactory


async def _jwks_key(http: TestClient, kid: str) -> jwt.PyJWK:
    keys = (await (await http.get("/oauth2/jwks")).json())["keys"]
    return jwt.PyJWK({k: v for k, v in next(k for k in keys if k["kid"] == kid).items()})


async def test_confidential_client_gets_a_signed_jwt_and_refresh_token(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    assert secret is not None
    redirect = await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD)
    assert redirect["state"] == "state-123"
    assert redirect["iss"] == "http://localhost:8000"
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": redirect["code"], "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "photos:read"
    assert body["refresh_token"]

    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    key = await _jwks_key(http, header["kid"])
    claims = jwt.decode(body["access_token"], key, algorithms=["ES256"], audience="http://localhost:8000/api")
    assert claims["iss"] == "http://localhost:8000"
    assert claims["sub"] == user.subject
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "photos:read"
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["jti"]


async def test_public_client_with_pkce(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, secret = await new_client(public=True)
    assert secret is None
    pkce = Pkce.new()
    redirect = await obtain_code(http, authorize_params(client.client_id, pkce=pkce), user.username, PASSWORD)
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": client.client_id,
            "code_verifier": pkce.verifier,
        },
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["refresh_token"]


async def test_stored_consent_skips_the_consent_page(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    client, _ = await new_client()
    await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD)
    assert await registry.consents.granted(user.user_id, client.client_id) == {"photos:read"}
    response = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id, state='again'))}",
        allow_redirects=False,
    )
    assert response.status == 302
    assert "code=" in response.headers["Location"]
    # a wider request needs consent again
    wider = authorize_params(client.client_id, scope="photos:read photos:write")
    response = await http.get(f"/oauth2/authorize?{urlencode(wider)}", allow_redirects=False)
    assert response.status == 200
    page = await response.text()
    assert "Photo Printer" in page
    assert "Upload new photos and delete existing ones" in page


async def test_denied_consent_returns_access_denied(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client()
    redirect = await obtain_code(
        http, authorize_params(client.client_id), user.username, PASSWORD, decision="deny"
    )
    assert redirect["error"] == "access_denied"
    assert redirect["state"] == "state-123"
    assert redirect["iss"] == "http://localhost:8000"
    assert "code" not in redirect
