"""The consent page's choices (issue 15): which requested scopes to grant, and for how long.

RFC 6749 §3.3: the client gets only what the user ticked, and the token response's ``scope`` says
so; a scope the request did not ask for is refused; nothing ticked is a denial. The duration bounds
the consent (an expired one asks again) and the refresh-token family's absolute lifetime.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import jwt
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, authorize_params, basic, hidden, query_of, sign_in
from tests.support.servers import PASSWORD, AppFactory, ClientFactory

BOTH = "photos:read photos:write"


async def consent_page(http: TestClient, client: Client, user: User, scope: str = BOTH) -> tuple[int, str]:
    """Sign in (if needed) and open /authorize; the status and the page (or Location)."""
    url = f"/oauth2/authorize?{urlencode(authorize_params(client.client_id, scope=scope))}"
    response = await http.get(url, allow_redirects=False)
    if response.status == 302 and response.headers["Location"].startswith("/login"):
        return_to = query_of(response.headers["Location"])["return_to"]
        assert await sign_in(http, user.username, PASSWORD, return_to) == 303
        response = await http.get(return_to, allow_redirects=False)
    if response.status == 200:
        return 200, await response.text()
    return response.status, response.headers["Location"]


async def answer(http: TestClient, page: str, *scopes: str, **fields: str) -> ClientResponse:
    """Submit the consent form with ``scopes`` ticked (and the form's marker that it offered them)."""
    data: list[tuple[str, str]] = [
        ("csrf_token", hidden(page, "csrf_token")),
        ("request_id", hidden(page, "request_id")),
        ("scope_choice", "1"),
        ("consent", fields.pop("consent", "allow")),
        *[("scope", s) for s in scopes],
        *fields.items(),
    ]
    return await http.post("/consent", data=data, allow_redirects=False)


async def redeem(http: TestClient, client: Client, secret: str, code: str) -> dict[str, Any]:
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def refresh(http: TestClient, client: Client, secret: str, token: str) -> ClientResponse:
    return await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic(client.client_id, secret),
    )


async def sql(database_url: str, query: str, *args: Any) -> Any:
    """Run one statement on the test database (to move time: expiries are edited, never slept)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def family_end(database_url: str, family_id: str) -> datetime:
    ends: datetime = await sql(
        database_url,
        "SELECT expires_at FROM tessera_auth.refresh_token_families WHERE family_id = $1",
        uuid.UUID(family_id),
    )
    return ends


def grant_id(access_token: str) -> str:
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["grant_id"])


async def test_the_page_offers_each_scope_ticked_and_the_durations(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(scope=BOTH)
    status, page = await consent_page(http, client, user)
    assert status == 200
    for scope in BOTH.split():
        assert re.search(rf'<input type="checkbox" name="scope" value="{scope}" checked>', page), scope
    assert re.search(r'name="duration" value="until-revoked" checked', page)
    assert 'name="duration" value="1h"' in page and 'name="duration" value="30d"' in page
    assert 'name="consent" value="allow"' in page and 'name="consent" value="deny"' in page
    assert re.search(r'id="provenance">Registered by .*operators</p>', page)


async def test_unticking_a_scope_narrows_the_code_its_tokens_and_the_response_scope(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """RFC 6749 §3.3: the token response's scope says what was granted when it differs."""
    client, secret = await new_client(scope=BOTH)
    assert secret
    _, page = await consent_page(http, client, user)
    response = await answer(http, page, "photos:read")
    assert response.status == 303
    code = query_of(response.headers["Location"])["code"]
    tokens = await redeem(http, client, secret, code)
    assert tokens["scope"] == "photos:read"
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["scope"] == "photos:read"
    # the remembered consent is what was granted, not what was asked
    assert await registry.consents.granted(user.user_id, client.client_id) == {"photos:read"}
    refreshed = await refresh(http, client, secret, tokens["refresh_token"])
    assert (await refreshed.json())["scope"] == "photos:read"
    # asking again for both shows the page again; asking for what was granted answers at once
    status, _ = await consent_page(http, client, user)
    assert status == 200
    status, location = await consent_page(http, client, user, scope="photos:read")
    assert status == 302 and "code" in query_of(location)


async def test_a_forged_extra_scope_is_refused(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """A consent never widens the request: a scope it did not ask for is refused."""
    client, _ = await new_client(scope=BOTH)
    _, page = await consent_page(http, client, user, scope="photos:read")
    response = await answer(http, page, "photos:read", "photos:write")
    assert response.status == 400
    assert "Location" not in response.headers
    assert await registry.consents.granted(user.user_id, client.client_id) == frozenset()


async def test_ticking_nothing_is_a_denial(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(scope=BOTH)
    _, page = await consent_page(http, client, user)
    response = await answer(http, page)
    assert response.status == 303
    assert query_of(response.headers["Location"])["error"] == "access_denied"
    assert await registry.consents.granted(user.user_id, client.client_id) == frozenset()


async def test_openid_cannot_be_unticked(http: TestClient, new_client: ClientFactory, user: User) -> None:
    """``openid`` is what signing in is: shown without a checkbox and kept; the rest is a choice."""
    client, secret = await new_client(scope="openid photos:read")
    assert secret
    _, page = await consent_page(http, client, user, scope="openid photos:read")
    assert 'value="openid"' not in page and 'data-scope="openid"' in page
    response = await answer(http, page)  # nothing ticked: a sign-in only
    tokens = await redeem(http, client, secret, query_of(response.headers["Location"])["code"])
    assert tokens["scope"] == "openid" and "id_token" in tokens


async def test_a_form_without_the_choice_grants_the_request_as_shown(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """A form without the marker (a page from before the choice existed) grants what it showed."""
    client, secret = await new_client(scope=BOTH)
    assert secret
    _, page = await consent_page(http, client, user)
    response = await http.post(
        "/consent",
        data={
            "csrf_token": hidden(page, "csrf_token"),
            "request_id": hidden(page, "request_id"),
            "consent": "allow",
        },
        allow_redirects=False,
    )
    tokens = await redeem(http, client, secret, query_of(response.headers["Location"])["code"])
    assert tokens["scope"] == BOTH


async def test_an_unknown_duration_is_refused(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(scope=BOTH)
    _, page = await consent_page(http, client, user)
    response = await answer(http, page, "photos:read", duration="forever-and-ever")
    assert response.status == 400


async def test_a_one_hour_grant_bounds_the_consent_and_the_refresh_family(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User, database_url: str
) -> None:
    client, secret = await new_client(scope=BOTH)
    assert secret
    _, page = await consent_page(http, client, user)
    response = await answer(http, page, *BOTH.split(), duration="1h")
    tokens = await redeem(http, client, secret, query_of(response.headers["Location"])["code"])
    hour_from_now = datetime.now(UTC) + timedelta(hours=1)
    [consent] = await registry.consents.list(user_id=user.user_id, client_id=client.client_id)
    assert consent.expires_at is not None and abs(consent.expires_at - hour_from_now) < timedelta(minutes=1)
    family = grant_id(tokens["access_token"])
    assert abs(await family_end(database_url, family) - hour_from_now) < timedelta(minutes=1)
    # a remembered consent answers silently, and its family ends with the consent too
    status, location = await consent_page(http, client, user)
    assert status == 302
    silent = await redeem(http, client, secret, query_of(location)["code"])
    assert await family_end(database_url, grant_id(silent["access_token"])) <= consent.expires_at
    # the hour passes
    await sql(
        database_url,
        "UPDATE tessera_auth.refresh_token_families SET expires_at = now() - interval '1 second'"
        " WHERE family_id = $1",
        uuid.UUID(family),
    )
    refused = await refresh(http, client, secret, tokens["refresh_token"])
    assert refused.status == 400 and (await refused.json())["error"] == "invalid_grant"


async def test_a_grant_never_outlives_the_family_lifetime(
    app_with: AppFactory, new_client: ClientFactory, user: User, database_url: str
) -> None:
    """TESSERA_REFRESH_FAMILY_LIFETIME is the longest a family lasts, whatever the user chose."""
    http = await app_with(refresh_family_lifetime=3600)
    client, secret = await new_client(scope=BOTH)
    assert secret
    _, page = await consent_page(http, client, user)
    response = await answer(http, page, "photos:read", duration="30d")
    tokens = await redeem(http, client, secret, query_of(response.headers["Location"])["code"])
    ends = await family_end(database_url, grant_id(tokens["access_token"]))
    assert abs(ends - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)


async def test_until_revoked_is_the_default_and_has_no_end(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(scope=BOTH)
    _, page = await consent_page(http, client, user)
    await answer(http, page, "photos:read")
    [consent] = await registry.consents.list(user_id=user.user_id, client_id=client.client_id)
    assert consent.expires_at is None and consent.scope == ("photos:read",)


async def test_an_expired_consent_asks_again(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User, database_url: str
) -> None:
    client, _ = await new_client(scope=BOTH)
    _, page = await consent_page(http, client, user)
    await answer(http, page, *BOTH.split(), duration="30d")
    status, _ = await consent_page(http, client, user)
    assert status == 302  # remembered
    await sql(
        database_url,
        "UPDATE tessera_auth.consents SET expires_at = now() - interval '1 second'"
        " WHERE user_id = $1 AND client_id = $2",
        user.user_id,
        client.client_id,
    )
    assert await registry.consents.granted(user.user_id, client.client_id) == frozenset()
    status, page = await consent_page(http, client, user)
    assert status == 200 and 'name="request_id"' in page
    # answering anew replaces the expired consent: only what is ticked now
    await answer(http, page, "photos:write")
    assert await registry.consents.granted(user.user_id, client.client_id) == {"photos:write"}


async def test_unticking_a_scope_granted_before_takes_it_out_of_the_consent(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """The answer replaces the earlier one for the scopes asked; scopes not asked stay granted."""
    client, _ = await new_client(scope="photos:read photos:write openid")
    _, page = await consent_page(http, client, user, scope="photos:read")
    await answer(http, page, "photos:read")
    _, page = await consent_page(http, client, user, scope="photos:write")
    await answer(http, page, "photos:write")
    assert await registry.consents.granted(user.user_id, client.client_id) == {"photos:read", "photos:write"}
    _, page = await consent_page(http, client, user, scope="openid photos:write")
    await answer(http, page)  # photos:write unticked now
    assert await registry.consents.granted(user.user_id, client.client_id) == {"openid", "photos:read"}
