"""RFC 8707 resource indicators: a token for one API, refused by every other one.

Each test registers its own APIs (identifiers unique to it: the database is shared by the session).
"""

from __future__ import annotations

import uuid
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from auth_server.registry import Registry
from auth_server.stores.users import User
from auth_server.tokens import KeyRingKeys
from shared.errors import InvalidToken
from shared.jwt_validation import TokenValidator
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, basic, obtain_code, query_of
from tests.support.servers import PASSWORD, ClientFactory


def _api(name: str) -> str:
    return f"https://{name}-{uuid.uuid4().hex[:8]}.example/api"


async def _register(registry: Registry, name: str, *scopes: str, service: str | None = None) -> str:
    identifier = _api(name)
    await registry.resources.create(identifier, name.title(), scopes, service_client_id=service)
    return identifier


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def _code_tokens(
    http: TestClient,
    client_id: str,
    secret: str | None,
    user: User,
    *,
    resources: list[str],
    scope: str = "photos:read",
    token_resource: str | None = None,
) -> tuple[int, dict[str, Any]]:
    pkce = Pkce.new()
    params = authorize_params(client_id, scope=scope, pkce=pkce)
    answer = await obtain_code(
        http, params, user.username, PASSWORD, repeated=[("resource", r) for r in resources]
    )
    data = {
        "grant_type": "authorization_code",
        "code": answer["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
    }
    if token_resource is not None:
        data["resource"] = token_resource
    response = await http.post("/oauth2/token", data=data, headers=basic(client_id, secret or ""))
    body: dict[str, Any] = await response.json()
    return response.status, body


async def test_a_token_for_one_api_has_exactly_that_audience_and_its_scopes(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    photos = await _register(registry, "photos", "photos:read", "photos:write")
    client, secret = await new_client(scope="openid photos:read photos:write", allow_introspection=True)
    status, body = await _code_tokens(
        http, client.client_id, secret, user, resources=[photos], scope="openid photos:read"
    )
    assert status == 200, body
    claims = _claims(body["access_token"])
    assert claims["aud"] == photos
    # openid is not the photo API's: the token for it carries only its scope
    assert claims["scope"] == body["scope"] == "photos:read"
    introspected = await http.post(
        "/oauth2/introspect",
        data={"token": body["access_token"]},
        headers=basic(client.client_id, secret or ""),
    )
    assert (await introspected.json())["aud"] == photos


async def test_a_token_for_api_a_is_refused_by_api_b(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    api_a = await _register(registry, "albums", "photos:read")
    api_b = await _register(registry, "prints", "photos:read")
    client, secret = await new_client()
    status, body = await _code_tokens(http, client.client_id, secret, user, resources=[api_a])
    assert status == 200, body
    token = body["access_token"]

    def validator(audience: str) -> TokenValidator:
        return TokenValidator(
            issuer=registry.settings.issuer, audience=audience, keys=KeyRingKeys(registry.keyring)
        )

    assert (await validator(api_a).validate(token))["aud"] == api_a
    try:
        await validator(api_b).validate(token)
    except InvalidToken as refused:
        assert "not meant for this resource server" in refused.description
    else:
        raise AssertionError("API B accepted a token for API A")
    # nor does the authorization server's own API (userinfo) take it
    userinfo = await http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status == 401


async def test_without_a_resource_the_default_audience_stays(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client()
    status, body = await _code_tokens(http, client.client_id, secret, user, resources=[])
    assert status == 200, body
    assert _claims(body["access_token"])["aud"] == registry.settings.access_token_audience


async def test_unknown_and_unpermitted_resources_get_invalid_target(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    admin_api = await _register(registry, "admin", "admin:clients")
    client, _secret = await new_client()  # photos:read photos:write only
    for resource, why in (
        (_api("nowhere"), "is not a resource this client may ask tokens for"),
        (admin_api, "is not a resource this client may ask tokens for"),
        ("not-a-uri", "absolute URI"),
        ("https://api.example/x#fragment", "absolute URI"),
    ):
        params = authorize_params(client.client_id, pkce=Pkce.new())
        response = await http.get(
            "/oauth2/authorize", params={**params, "resource": resource}, allow_redirects=False
        )
        assert response.status == 302, resource
        answer = query_of(response.headers["Location"])
        assert answer["error"] == "invalid_target", resource
        assert why in answer["error_description"], answer
        # and at the token endpoint, for a grant without users
    service, service_secret = await new_client(grant_types=["client_credentials"], scope="photos:read")
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "resource": admin_api},
        headers=basic(service.client_id, service_secret or ""),
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_target"


async def test_client_credentials_for_one_api(
    http: TestClient, registry: Registry, new_client: ClientFactory
) -> None:
    photos = await _register(registry, "photos", "photos:read")
    service, secret = await new_client(grant_types=["client_credentials"], scope="photos:read photos:write")
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "resource": photos},
        headers=basic(service.client_id, secret or ""),
    )
    body = await response.json()
    assert response.status == 200, body
    claims = _claims(body["access_token"])
    assert (claims["aud"], claims["scope"]) == (photos, "photos:read")  # photos:write is not that API's


async def test_the_token_request_may_only_name_a_resource_of_the_grant(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    api_a = await _register(registry, "albums", "photos:read")
    api_b = await _register(registry, "prints", "photos:read")
    client, secret = await new_client()
    status, body = await _code_tokens(
        http, client.client_id, secret, user, resources=[api_a], token_resource=api_b
    )
    assert (status, body["error"]) == (400, "invalid_target")
    # two resources approved: the token request names one, and gets a token for it alone
    status, body = await _code_tokens(
        http, client.client_id, secret, user, resources=[api_a, api_b], token_resource=api_b
    )
    assert status == 200, body
    assert _claims(body["access_token"])["aud"] == api_b
    # two approved and none named: which one is not guessed
    status, body = await _code_tokens(http, client.client_id, secret, user, resources=[api_a, api_b])
    assert (status, body["error"]) == (400, "invalid_target")


async def test_a_refresh_may_narrow_to_one_resource_of_the_grant_and_no_other(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    api_a = await _register(registry, "albums", "photos:read")
    api_b = await _register(registry, "prints", "photos:read", "photos:write")
    api_c = await _register(registry, "other", "photos:read")
    client, secret = await new_client()
    status, body = await _code_tokens(
        http,
        client.client_id,
        secret,
        user,
        resources=[api_a, api_b],
        scope="photos:read photos:write",
        token_resource=api_b,
    )
    assert status == 200, body
    assert _claims(body["access_token"])["scope"] == "photos:read photos:write"
    refresh = body["refresh_token"]

    async def refreshed(**extra: str) -> tuple[int, dict[str, Any]]:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh, **extra},
            headers=basic(client.client_id, secret or ""),
        )
        return response.status, await response.json()

    # a resource outside the grant: refused, and the refresh token is still good
    status, answer = await refreshed(resource=api_c)
    assert (status, answer["error"]) == (400, "invalid_target")
    status, answer = await refreshed()  # two resources, none named
    assert (status, answer["error"]) == (400, "invalid_target")
    status, answer = await refreshed(resource=api_a)
    assert status == 200, answer
    claims = _claims(answer["access_token"])
    assert (claims["aud"], claims["scope"]) == (api_a, "photos:read")  # photos:write is not api_a's
    refresh = answer["refresh_token"]
    status, answer = await refreshed(resource=api_b)
    assert status == 200, answer
    assert _claims(answer["access_token"])["scope"] == "photos:read photos:write"


async def test_consent_is_per_resource(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    api_a = await _register(registry, "albums", "photos:read")
    api_b = await _register(registry, "prints", "photos:read")
    client, secret = await new_client(first_party=True)  # remembered consent answers silently
    status, _ = await _code_tokens(http, client.client_id, secret, user, resources=[api_a])
    assert status == 200
    params = {**authorize_params(client.client_id, pkce=Pkce.new()), "resource": api_a}
    again = await http.get("/oauth2/authorize", params=params, allow_redirects=False)
    assert again.status == 302 and "code=" in again.headers["Location"]  # allowed before: no page
    other = await http.get("/oauth2/authorize", params={**params, "resource": api_b}, allow_redirects=False)
    assert other.status == 200  # another API: she is asked, and the page names it
    page = await other.text()
    assert "consent" in page and f"Prints ({api_b})" in page
    # nor has she allowed it tokens for the general audience (every scope, any API that takes it)
    general = await http.get(
        "/oauth2/authorize", params=authorize_params(client.client_id, pkce=Pkce.new()), allow_redirects=False
    )
    assert general.status == 200
    consent = await registry.consents.remembered(uuid.UUID(user.subject), client.client_id)
    assert consent is not None and consent.audiences == {api_a: {"photos:read"}}
    # her account page says where the app can act: at that API
    account = await (await http.get("/account")).text()
    assert f"Albums ({api_a})" in account


async def test_a_mistaken_resource_leaves_the_code_and_the_refresh_token_usable(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """Naming no resource where the grant covers several, or one outside it, is a mistake the
    client can correct: the code is not consumed, the refresh token does not rotate."""
    api_a = await _register(registry, "albums", "photos:read")
    api_b = await _register(registry, "prints", "photos:read", "photos:write")
    api_c = await _register(registry, "other", "photos:read")
    client, secret = await new_client()
    pkce = Pkce.new()
    params = authorize_params(client.client_id, scope="photos:read photos:write", pkce=pkce)
    code = (
        await obtain_code(
            http, params, user.username, PASSWORD, repeated=[("resource", api_a), ("resource", api_b)]
        )
    )["code"]

    async def redeem(**extra: str) -> tuple[int, dict[str, Any]]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
            **extra,
        }
        response = await http.post("/oauth2/token", data=form, headers=basic(client.client_id, secret or ""))
        return response.status, await response.json()

    for mistake in ({}, {"resource": api_c}):
        status, body = await redeem(**mistake)
        assert (status, body["error"]) == (400, "invalid_target"), mistake
    status, body = await redeem(resource=api_a)
    assert status == 200, body  # the code was still good
    refresh = body["refresh_token"]

    async def refreshed(**extra: str) -> tuple[int, dict[str, Any]]:
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh, **extra},
            headers=basic(client.client_id, secret or ""),
        )
        return response.status, await response.json()

    # photos:write is not api_a's; an unregistered resource; no resource of two: each refused...
    for mistake, error in (
        ({"resource": api_a, "scope": "photos:write"}, "invalid_scope"),
        ({"resource": _api("nowhere")}, "invalid_target"),
        ({}, "invalid_target"),
    ):
        status, body = await refreshed(**mistake)
        assert (status, body["error"]) == (400, error), mistake
    # ...and the refresh token still rotates (no reuse detected, its family intact)
    status, body = await refreshed(resource=api_b, scope="photos:write")
    assert status == 200, body
    assert _claims(body["access_token"])["scope"] == "photos:write"


async def test_a_consent_is_per_api_and_scope_not_their_cross_product(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """Reading at one API and writing at another allows neither writing at the first nor reading
    at the second; nor anything at the general audience (the review's finding)."""
    albums = await _register(registry, "albums", "photos:read", "photos:write")
    prints = await _register(registry, "prints", "photos:read", "photos:write")
    client, secret = await new_client(first_party=True)
    assert (await _code_tokens(http, client.client_id, secret, user, resources=[albums]))[0] == 200
    status, _ = await _code_tokens(
        http, client.client_id, secret, user, resources=[prints], scope="photos:write"
    )
    assert status == 200

    async def silent(resource: str | None, scope: str) -> bool:
        params = authorize_params(client.client_id, scope=scope, pkce=Pkce.new())
        if resource is not None:
            params["resource"] = resource
        response = await http.get("/oauth2/authorize", params=params, allow_redirects=False)
        return response.status == 302 and "code=" in response.headers["Location"]

    assert await silent(albums, "photos:read") and await silent(prints, "photos:write")
    assert not await silent(albums, "photos:write")
    assert not await silent(prints, "photos:read")
    assert not await silent(None, "photos:read")


async def test_a_posted_authorization_request_may_name_several_resources(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """OpenID Connect's POST /authorize (Core §3.1.2.1) takes repeated ``resource`` as GET does."""
    api_a = await _register(registry, "albums", "photos:read")
    api_b = await _register(registry, "prints", "photos:read")
    client, _secret = await new_client()
    form = [
        *authorize_params(client.client_id, pkce=Pkce.new()).items(),
        ("resource", api_a),
        ("resource", api_b),
    ]
    response = await http.post("/oauth2/authorize", data=form, allow_redirects=False)
    assert response.status == 302, await response.text()
    assert response.headers["Location"].startswith("/login")  # accepted: on to sign in
    twice = [*authorize_params(client.client_id, pkce=Pkce.new()).items(), ("state", "again")]
    refused = await http.post("/oauth2/authorize", data=twice, allow_redirects=False)
    assert refused.status in (302, 400) and "repeated" in (
        refused.headers.get("Location", "") + await refused.text()
    )
