"""The account page (issue 15): the apps that can act for the signed-in user, and taking access back.

Revoking forgets the consent, revokes the app's refresh tokens of hers, deny-lists its live access
tokens, sends it a back-channel logout, and is audited; the form is CSRF-protected, and a user can
only ever take back her own grants.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import REDIRECT_URI, authorize_params, basic, hidden, obtain_code, sign_in
from tests.support.servers import PASSWORD, ClientFactory, free_port


async def tokens_for(http: TestClient, client: Client, secret: str, user: User) -> dict[str, Any]:
    """Run the code flow for ``user`` (consenting to everything) and redeem the code."""
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def introspect(http: TestClient, client: Client, secret: str, token: str) -> bool:
    response = await http.post(
        "/oauth2/introspect", data={"token": token}, headers=basic(client.client_id, secret)
    )
    assert response.status == 200
    return bool((await response.json())["active"])


async def account(http: TestClient) -> str:
    response = await http.get("/account", allow_redirects=False)
    assert response.status == 200
    return await response.text()


async def revoke(http: TestClient, page: str, client_id: str, **overrides: str) -> web.Response | Any:
    form = {"csrf_token": hidden(page, "csrf_token"), "revoke": client_id, **overrides}
    return await http.post("/account", data=form, allow_redirects=False)


class BackChannel:
    """A relying party's back-channel logout endpoint: what it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append({k: str(v) for k, v in (await request.post()).items()})
        self.arrived.set()
        return web.Response(status=200)


@pytest.fixture
async def backchannel() -> AsyncIterator[BackChannel]:
    party = BackChannel()
    app = web.Application()
    app.router.add_post("/backchannel", party.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    party.url = f"http://127.0.0.1:{port}/backchannel"
    try:
        yield party
    finally:
        await runner.cleanup()


async def test_signed_out_visitors_are_sent_to_sign_in_and_back(http: TestClient, user: User) -> None:
    response = await http.get("/account", allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location == f"/login?{urlencode({'return_to': '/account'})}"
    assert await sign_in(http, user.username, PASSWORD, "/account") == 303
    page = await account(http)
    assert "No app can act for you" in page
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_the_page_lists_what_each_app_can_do_and_when(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client(
        name="Photo Printer",
        logo_uri="https://printer.example/logo.png",
        client_uri="https://printer.example/",
    )
    assert secret
    await tokens_for(http, client, secret, user)
    page = await account(http)
    assert f'data-client-id="{client.client_id}"' in page
    assert "Photo Printer" in page and 'src="https://printer.example/logo.png"' in page
    assert 'href="https://printer.example/"' in page
    assert registry.settings.scopes["photos:read"] in page
    assert "Until you take it back" in page and "Last used" in page and "Since" in page
    assert f'name="revoke" value="{client.client_id}"' in page


async def test_revoking_ends_everything_the_app_holds(
    http: TestClient,
    registry: Registry,
    new_client: ClientFactory,
    user: User,
    backchannel: BackChannel,
) -> None:
    client, secret = await new_client(backchannel_logout_uri=backchannel.url, allow_introspection=True)
    assert secret
    tokens = await tokens_for(http, client, secret, user)
    assert await introspect(http, client, secret, tokens["access_token"])
    page = await account(http)
    response = await revoke(http, page, client.client_id)
    assert response.status == 303
    assert response.headers["Location"] == f"/account?{urlencode({'revoked': client.client_id})}"
    # the consent is gone: the next request asks again
    assert await registry.consents.granted(user.user_id, client.client_id) == frozenset()
    # the refresh token no longer works, and the access token is deny-listed
    refreshed = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(client.client_id, secret),
    )
    assert refreshed.status == 400 and (await refreshed.json())["error"] == "invalid_grant"
    assert not await introspect(http, client, secret, tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert await registry.revoked_tokens.is_revoked(claims["jti"], claims["grant_id"])  # its grant is listed
    # the app hears of it on its back channel: a logout token for the sub it sees
    await asyncio.wait_for(backchannel.arrived.wait(), 10)
    logout = jwt.decode(backchannel.received[0]["logout_token"], options={"verify_signature": False})
    assert logout["aud"] == client.client_id and logout["sub"] == str(user.user_id)
    # the page says so, and lists the app no more
    after = await (await http.get(response.headers["Location"])).text()
    assert "can no longer act for you" in after and f'data-client-id="{client.client_id}"' not in after
    # audited, as the CLI does
    events = [e for e in await registry.audit.recent("consent.revoked") if e.client_id == client.client_id]
    assert events and events[0].subject == str(user.user_id)
    assert events[0].details["refresh_token_families_revoked"] == 1
    assert events[0].details["backchannel_logout"] is True


async def test_a_forged_or_missing_csrf_token_is_refused(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    client, secret = await new_client(allow_introspection=True)
    assert secret
    tokens = await tokens_for(http, client, secret, user)
    page = await account(http)
    for forged in ({"csrf_token": "forged"}, {"csrf_token": ""}):
        response = await revoke(http, page, client.client_id, **forged)
        assert response.status == 400 and "Location" not in response.headers
    assert await registry.consents.granted(user.user_id, client.client_id) == {"photos:read"}
    assert await introspect(http, client, secret, tokens["access_token"])


async def test_a_user_sees_and_revokes_only_her_own_apps(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """Another user's app is neither listed nor revocable: the subject is always the session's."""
    other = await registry.users.create(f"other-{user.username}", hash_password(PASSWORD))
    theirs, secret = await new_client(name="Their App", allow_introspection=True)
    assert secret
    their_tokens = await tokens_for(http, theirs, secret, other)
    http.session.cookie_jar.clear()
    mine, my_secret = await new_client(name="My App")
    assert my_secret
    await tokens_for(http, mine, my_secret, user)
    page = await account(http)
    assert f'data-client-id="{mine.client_id}"' in page
    assert f'data-client-id="{theirs.client_id}"' not in page and "Their App" not in page
    response = await revoke(http, page, theirs.client_id)
    assert response.status == 400
    assert await registry.consents.granted(other.user_id, theirs.client_id) == {"photos:read"}
    assert await introspect(http, theirs, secret, their_tokens["access_token"])
    response = await revoke(http, page, "not a client id!")
    assert response.status == 400
