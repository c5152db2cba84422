"""Regression tests for the security review of the open platform (issue 15): what a client that is
not approved (pending, rejected, suspended) can no longer do, what a reviewed app can no longer
change without review, review decisions on what the reviewer saw, secrets issued once and stopped
at once, and the cap on open registrations."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from auth_server import platform
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.integration.test_developer_console import (
    APPLICATION,
    applied,
    browser_of,
    csrf_of,
    secret_on,
    token_status,
)
from tests.integration.test_dynamic_registration import REGISTER, bearer, native
from tests.support.flow import REDIRECT_URI, authorize_params, basic, hidden, obtain_code, query_of, sign_in
from tests.support.servers import PASSWORD, AppFactory, ClientFactory, free_port, registry_of

Factory = Callable[..., Awaitable[TestClient]]

PARTNER = {
    "client_name": "Partner",
    "redirect_uris": ["https://partner.example/cb"],
    "grant_types": ["authorization_code"],
    "scope": "photos:read",
    "logo_uri": "https://partner.example/logo.png",
    "client_uri": "https://partner.example/",
}


@pytest.fixture
async def developer(aiohttp_client: Factory, settings: Settings, user: User) -> TestClient:
    """A browser signed in as ``user``, who applies for apps in the developer console."""
    return await browser_of(aiohttp_client, settings, user)


async def dynamic_client(http: TestClient, *, auto_approve: bool, **fields: Any) -> tuple[str, str]:
    """A client registered through RFC 7591 with an initial access token: its id and its
    registration access token."""
    initial, _ = await registry_of(http).registration_tokens.create(auto_approve=auto_approve)
    response = await http.post(REGISTER, json={**PARTNER, **fields}, headers=bearer(initial))
    assert response.status == 201, await response.text()
    info = await response.json()
    return info["client_id"], info["registration_access_token"]


async def loaded(registry: Registry, client_id: str) -> Client:
    client = await registry.clients.load(client_id)
    assert client is not None
    return client


async def edit(browser: TestClient, client_id: str, scope: str = "photos:read", **changes: str) -> Any:
    """Submit the developer console's edit form with ``changes`` to the application."""
    fields = [("csrf_token", await csrf_of(browser)), *{**APPLICATION, **changes}.items(), ("scope", scope)]
    return await browser.post(f"/developers/apps/{client_id}/edit", data=fields, allow_redirects=False)


async def code_flow_tokens(http: TestClient, client: Client, secret: str, user: User, scope: str) -> Any:
    code = (
        await obtain_code(http, authorize_params(client.client_id, scope=scope), user.username, PASSWORD)
    )["code"]
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200, await response.text()
    return await response.json()


@pytest.mark.parametrize("status", ["pending", "rejected", "suspended"])
async def test_logout_never_redirects_to_a_client_that_is_not_approved(
    http: TestClient, new_client: ClientFactory, status: str
) -> None:
    """/oauth2/logout with the client_id of a client not approved is an error page, not a redirect."""
    target = "https://evil.example/phish"
    client, _ = await new_client(status=status, post_logout_redirect_uris=[target])
    response = await http.get(
        "/oauth2/logout",
        params={"client_id": client.client_id, "post_logout_redirect_uri": target},
        allow_redirects=False,
    )
    assert response.status == 400 and "Location" not in response.headers


async def test_open_native_registration_refuses_web_post_logout_uris_and_back_channel_logout(
    app_with: AppFactory,
) -> None:
    """Without an initial access token, post-logout URIs must be native and no back-channel URI is taken."""
    http = await app_with(registration="open-native")
    web = await http.post(REGISTER, json=native(post_logout_redirect_uris=["https://evil.example/phish"]))
    assert web.status == 400 and (await web.json())["error"] == "invalid_redirect_uri"
    back = await http.post(REGISTER, json=native(backchannel_logout_uri="https://evil.example/bc"))
    assert back.status == 400 and (await back.json())["error"] == "invalid_client_metadata"


async def test_rfc7592_widening_of_a_suspended_client_waits_for_review_even_after_reinstatement(
    app_with: AppFactory,
) -> None:
    """A suspended dynamic client's wider scope and new redirect URI wait in pending_changes."""
    http = await app_with()
    registry = registry_of(http)
    client_id, access_token = await dynamic_client(http, auto_approve=True)
    await platform.suspend(registry, client_id, "abuse")
    wider = {
        **PARTNER,
        "redirect_uris": ["https://partner.example/cb", "https://evil.example/cb"],
        "scope": "photos:read photos:write",
    }
    response = await http.put(f"{REGISTER}/{client_id}", json=wider, headers=bearer(access_token))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["scope"] == "photos:read" and body["redirect_uris"] == ["https://partner.example/cb"]
    assert body["tessera_pending_changes"]["scope"] == ["photos:read", "photos:write"]
    assert "https://evil.example/cb" in body["tessera_pending_changes"]["redirect_uris"]
    unchanged = await loaded(registry, client_id)
    assert unchanged.scope == ("photos:read",) and unchanged.redirect_uris == ("https://partner.example/cb",)
    await platform.reinstate(registry, client_id)
    reinstated = await loaded(registry, client_id)
    assert reinstated.active and reinstated.scope == ("photos:read",)
    assert reinstated.redirect_uris == ("https://partner.example/cb",)
    assert reinstated.pending_changes is not None and "scope" in reinstated.pending_changes


async def test_new_name_logo_or_website_of_a_reviewed_app_waits_for_review(
    developer: TestClient, http: TestClient, registry: Registry
) -> None:
    """A reviewed app's new name, logo_uri or client_uri (console or RFC 7592) waits for the reviewer."""
    # the developer console's edit form
    client = await applied(developer, registry)
    await platform.approve(registry, client.client_id)
    renamed = {
        "client_name": "Tessera Account Security",
        "logo_uri": "https://printer.example/other-logo.png",
        "client_uri": "https://printer.example/other",
    }
    response = await edit(developer, client.client_id, **renamed)
    assert response.status == 303 and response.headers["Location"].endswith("?edited=review")
    waiting = await loaded(registry, client.client_id)
    assert waiting.active and waiting.client_name == "Photo Printer"
    assert (waiting.logo_uri, waiting.client_uri) == (APPLICATION["logo_uri"], APPLICATION["client_uri"])
    assert waiting.pending_changes is not None and renamed.items() <= waiting.pending_changes.items()
    await platform.approve(registry, client.client_id)
    approved = await loaded(registry, client.client_id)
    assert (approved.client_name, approved.logo_uri, approved.client_uri) == tuple(renamed.values())
    assert approved.pending_changes is None
    # RFC 7592 PUT
    client_id, access_token = await dynamic_client(http, auto_approve=False)
    await platform.approve(registry, client_id)
    shown = {
        "client_name": "Google Account Security",
        "logo_uri": "https://partner.example/google.png",
        "client_uri": "https://partner.example/google",
    }
    response = await http.put(
        f"{REGISTER}/{client_id}", json={**PARTNER, **shown}, headers=bearer(access_token)
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["client_name"] == "Partner" and body["logo_uri"] == PARTNER["logo_uri"]
    assert shown.items() <= body["tessera_pending_changes"].items()
    assert (await loaded(registry, client_id)).client_name == "Partner"
    await platform.approve(registry, client_id)
    approved = await loaded(registry, client_id)
    assert (approved.client_name, approved.logo_uri, approved.client_uri) == tuple(shown.values())


async def test_a_suspended_clients_tokens_are_inactive_and_it_cannot_introspect(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """After suspension: its tokens introspect inactive, it cannot introspect, userinfo refuses its token."""
    machine, machine_secret = await new_client(grant_types=["client_credentials"], allow_introspection=True)
    server, server_secret = await new_client(
        grant_types=["client_credentials"], allow_introspection=True, name="Resource server"
    )
    app, app_secret = await new_client(scope="openid photos:read")
    assert machine_secret is not None and server_secret is not None and app_secret is not None
    issued = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "photos:read"},
        headers=basic(machine.client_id, machine_secret),
    )
    access_token = (await issued.json())["access_token"]
    user_token = (await code_flow_tokens(http, app, app_secret, user, "openid photos:read"))["access_token"]

    async def introspect(client_id: str, secret: str) -> Any:
        return await http.post(
            "/oauth2/introspect", data={"token": access_token}, headers=basic(client_id, secret)
        )

    async def userinfo() -> Any:
        return await http.get("/oauth2/userinfo", headers=bearer(user_token))

    assert (await (await introspect(server.client_id, server_secret)).json())["active"] is True
    assert (await userinfo()).status == 200
    for client in (machine, app):
        await platform.suspend(registry, client.client_id, "abuse")
    assert await (await introspect(server.client_id, server_secret)).json() == {"active": False}
    refused = await userinfo()
    assert refused.status == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # a suspended resource server may no longer introspect at all
    await platform.suspend(registry, server.client_id, "abuse")
    response = await introspect(server.client_id, server_secret)
    assert response.status == 400 and (await response.json())["error"] == "unauthorized_client"


async def test_consent_posted_after_suspension_gets_an_error_page_and_no_code(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """The consent form answered after the client was suspended is an error page, never a redirect."""
    client, _ = await new_client()
    authorize = f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}"
    response = await http.get(authorize, allow_redirects=False)
    return_to = query_of(response.headers["Location"])["return_to"]
    assert await sign_in(http, user.username, PASSWORD, return_to) == 303
    page = await http.get(return_to, allow_redirects=False)
    assert page.status == 200
    form = await page.text()
    await platform.suspend(registry, client.client_id, "abuse")
    answer = await http.post(
        "/consent",
        data={
            "csrf_token": hidden(form, "csrf_token"),
            "request_id": hidden(form, "request_id"),
            "consent": "allow",
        },
        allow_redirects=False,
    )
    assert answer.status == 400 and "Location" not in answer.headers


async def test_an_admin_decision_on_a_changed_application_is_refused_until_looked_at_again(
    aiohttp_client: Factory, settings: Settings, developer: TestClient, registry: Registry
) -> None:
    """Approving with the version the page showed is refused (409) if the application changed since."""
    reviewer = await registry.users.create(f"admin-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    await registry.users.set_admin(reviewer.user_id, True)
    admin = await browser_of(aiohttp_client, settings, reviewer)
    client = await applied(developer, registry)
    path = f"/admin/apps/{client.client_id}"

    async def approve(page: str) -> Any:
        form = {
            "csrf_token": hidden(page, "csrf_token"),
            "decision": "approve",
            "version": hidden(page, "version"),
        }
        return await admin.post(path, data=form)

    seen = await (await admin.get(path)).text()
    edited = await edit(developer, client.client_id, client_name="Photo Printer (now with more access)")
    assert edited.status == 303
    stale = await approve(seen)
    assert stale.status == 409
    assert (await loaded(registry, client.client_id)).status == "pending"
    fresh = await approve(await (await admin.get(path)).text())
    assert fresh.status == 200
    assert (await loaded(registry, client.client_id)).status == "approved"


async def test_rotate_now_stops_the_old_secret_at_once_while_rotate_keeps_it_for_the_overlap(
    developer: TestClient, registry: Registry
) -> None:
    """action=rotate keeps the old secret working for the overlap; action=rotate-now stops it at once."""
    client = await applied(developer, registry)
    await platform.approve(registry, client.client_id)
    csrf = await csrf_of(developer)
    path = f"/developers/apps/{client.client_id}/secret"

    async def secret(action: str) -> str:
        response = await developer.post(path, data={"csrf_token": csrf, "action": action})
        assert response.status == 200, await response.text()
        return secret_on(await response.text())

    first = await secret("issue")
    second = await secret("rotate")
    # 400 (invalid_grant): the credentials passed; 401: they did not
    assert await token_status(developer, client.client_id, first) == 400
    assert await token_status(developer, client.client_id, second) == 400
    third = await secret("rotate-now")
    assert await token_status(developer, client.client_id, second) == 401
    assert await token_status(developer, client.client_id, first) == 401
    assert await token_status(developer, client.client_id, third) == 400


async def test_concurrent_requests_for_the_first_secret_get_it_exactly_once(
    developer: TestClient, registry: Registry
) -> None:
    """Of several simultaneous action=issue requests, one gets the secret and the rest 409."""
    client = await applied(developer, registry)
    await platform.approve(registry, client.client_id)
    csrf = await csrf_of(developer)
    responses = await asyncio.gather(
        *(
            developer.post(
                f"/developers/apps/{client.client_id}/secret", data={"csrf_token": csrf, "action": "issue"}
            )
            for _ in range(6)
        )
    )
    pages = [(response.status, await response.text()) for response in responses]
    shown = [page for status, page in pages if status == 200]
    assert len(shown) == 1 and sorted(status for status, _ in pages) == [200, 409, 409, 409, 409, 409]
    assert all('id="client-secret"' not in page for status, page in pages if status != 200)
    assert await token_status(developer, client.client_id, secret_on(shown[0])) == 400


async def test_an_inactive_client_gets_no_admin_api_access_no_self_deletion_and_no_name_on_the_account_page(
    app_with: AppFactory,
) -> None:
    """Admin API tokens of a suspended/unknown client: 403; a suspended client cannot DELETE itself;
    /account?revoked= names no pending client."""
    port = free_port()
    http = await app_with(admin_port=port)
    registry = registry_of(http)
    operator = await registry.users.create(f"adm-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    await registry.users.set_admin(operator.user_id, True)
    statuses = {}
    for status in ("approved", "suspended"):
        console, _, _ = await register(
            registry,
            ClientMetadata(
                client_name=f"admin console ({status})",
                redirect_uris=["https://admin.example/callback"],
                grant_types=["authorization_code"],
                scope=["admin:read", "admin:write"],
                status=status,
            ),
        )
        statuses[status] = console.client_id
    statuses["unknown"] = f"no-such-client-{uuid.uuid4().hex[:8]}"

    async def call(client_id: str) -> int:
        token = registry.access_tokens.sign(
            registry.access_tokens.prepare(),
            subject=operator.subject,
            client_id=client_id,
            scope=("admin:read",),
        )
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/clients", headers=bearer(token)) as response,
        ):
            return response.status

    assert {status: await call(client_id) for status, client_id in statuses.items()} == {
        "approved": 200,
        "suspended": 403,
        "unknown": 403,
    }
    # RFC 7592 DELETE by a suspended client
    client_id, access_token = await dynamic_client(http, auto_approve=True)
    await platform.suspend(registry, client_id, "abuse")
    deleted = await http.delete(f"{REGISTER}/{client_id}", headers=bearer(access_token))
    assert deleted.status == 401 and (await deleted.json())["error"] == "invalid_token"
    assert (await loaded(registry, client_id)).status == "suspended"
    # the account page's notice names no app under review
    name = f"Unreviewed {uuid.uuid4().hex[:8]}"
    pending, _, _ = await register(
        registry,
        ClientMetadata(
            client_name=name,
            redirect_uris=["https://pending.example/cb"],
            grant_types=["authorization_code"],
            scope=["photos:read"],
            status="pending",
        ),
    )
    user = await registry.users.create(f"user-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    assert await sign_in(http, user.username, PASSWORD, "/account") == 303
    page = await http.get("/account", params={"revoked": pending.client_id})
    assert page.status == 200 and name not in await page.text()


async def test_open_registrations_are_capped_for_everyone_and_initial_access_tokens_do_not_count(
    app_with: AppFactory,
) -> None:
    """60 open registrations an hour is one a minute (in Redis); ones with a token are not counted."""
    http = await app_with(
        registration="open-native", open_registrations_per_hour=60, rate_register_per_ip=100, rate_sync_ms=0
    )
    registry = registry_of(http)

    async def with_token() -> int:
        initial, _ = await registry.registration_tokens.create()
        return (await http.post(REGISTER, json=native(), headers=bearer(initial))).status

    second = time.time() % 60
    if second > 59.05:  # all in one of the limit's one-minute windows
        await asyncio.sleep(60.01 - second)
    assert [await with_token(), await with_token()] == [201, 201]
    assert (await http.post(REGISTER, json=native())).status == 201
    refused = await http.post(REGISTER, json=native())
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert await with_token() == 201
