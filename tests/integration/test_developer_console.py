"""The developer console, /developers (issue 15, item 1): applying, the review's answer, the secret
shown once after approval, rotation with overlap, changes (wider ones wait for review while the
approved settings keep working), usage, and that developers see only their own apps."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from auth_server import platform
from auth_server.app import create_app
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import basic, hidden, sign_in
from tests.support.servers import PASSWORD

Factory = Callable[..., Awaitable[TestClient]]

APPLICATION = {
    "client_name": "Photo Printer",
    "description": "Prints your photos and posts them to you.",
    "client_uri": "https://printer.example/",
    "logo_uri": "https://printer.example/logo.png",
    "policy_uri": "https://printer.example/privacy",
    "contact_name": "Zhang Wei",
    "contact_email": "wei@printer.example",
    "redirect_uris": "https://printer.example/callback\r\nhttps://printer.example/other",
    "scope_justification": "Reading the photos to print them.",
}


async def browser_of(aiohttp_client: Factory, settings: Settings, user: User) -> TestClient:
    """A browser of its own (its own cookies), signed in as ``user``."""
    browser = await aiohttp_client(create_app(settings))
    assert await sign_in(browser, user.username, PASSWORD) == 303
    return browser


async def csrf_of(browser: TestClient, path: str = "/developers") -> str:
    page = await (await browser.get(path)).text()
    return hidden(page, "csrf_token")


async def apply(browser: TestClient, scope: tuple[str, ...] = ("photos:read",), /, **changes: str) -> Any:
    fields: list[tuple[str, str]] = [("csrf_token", await csrf_of(browser, "/developers/apply"))]
    fields += list({**APPLICATION, **changes}.items())
    fields += [("scope", s) for s in scope]
    return await browser.post("/developers/apply", data=fields, allow_redirects=False)


async def applied(browser: TestClient, registry: Registry, **changes: str) -> Client:
    response = await apply(browser, **changes)
    assert response.status == 303, await response.text()
    client_id = response.headers["Location"].split("/")[3].split("?")[0]
    client = await registry.clients.load(client_id)
    assert client is not None
    return client


@pytest.fixture
async def developer(aiohttp_client: Factory, settings: Settings, user: User) -> TestClient:
    return await browser_of(aiohttp_client, settings, user)


async def test_not_signed_in_is_sent_to_sign_in_and_back(http: TestClient) -> None:
    response = await http.get("/developers", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?return_to=%2Fdevelopers"


async def test_an_application_is_registered_pending_review_with_everything_it_said(
    developer: TestClient, registry: Registry, user: User
) -> None:
    client = await applied(developer, registry)
    assert client.status == "pending" and not client.active
    assert client.owner_id == user.user_id and client.registered_via == "developer"
    assert client.token_endpoint_auth_method == "client_secret_basic" and client.require_pkce
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert client.redirect_uris == ("https://printer.example/callback", "https://printer.example/other")
    assert (client.contact_name, client.contact_email) == ("Zhang Wei", "wei@printer.example")
    assert client.policy_uri == "https://printer.example/privacy" and client.scope == ("photos:read",)
    page = await (await developer.get(f"/developers/apps/{client.client_id}?applied=1")).text()
    assert "Pending review" in page and "client-id" not in page and "client-secret" not in page
    listing = await (await developer.get("/developers")).text()
    assert "Photo Printer" in listing and "Pending review" in listing


async def test_problems_are_shown_on_the_form_and_nothing_is_lost(developer: TestClient) -> None:
    response = await apply(developer, contact_email="not an address", client_uri="")
    page = await response.text()
    assert response.status == 400
    assert "This does not look like an email address." in page and "Give the app&#39;s website." in page
    assert 'value="Zhang Wei"' in page and "https://printer.example/other" in page
    assert 'value="photos:read" checked' in page
    response = await apply(developer, redirect_uris="http://printer.example/callback")
    page = await response.text()
    assert response.status == 400 and "plain http is allowed only for loopback hosts" in page
    assert "Reading the photos to print them." in page


async def test_admin_scopes_are_never_offered_nor_accepted(
    aiohttp_client: Factory, database_url: str, backing: Any, user: User
) -> None:
    from tests.support.servers import make_settings

    settings = make_settings(
        database_url,
        backing.redis_url,
        f"tessera-test-{uuid.uuid4().hex[:8]}:",
        scopes='{"photos:read": "See your photos", "admin:clients": "Manage every client"}',
    )
    browser = await browser_of(aiohttp_client, settings, user)
    page = await (await browser.get("/developers/apply")).text()
    assert "photos:read" in page and "admin:clients" not in page
    response = await apply(browser, ("admin:clients",))
    assert response.status == 400 and "Choose only the kinds of access listed." in await response.text()


async def test_developers_see_only_their_own_apps(
    aiohttp_client: Factory, settings: Settings, developer: TestClient, registry: Registry
) -> None:
    client = await applied(developer, registry)
    other = await registry.users.create(f"other-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    stranger = await browser_of(aiohttp_client, settings, other)
    assert "Photo Printer" not in await (await stranger.get("/developers")).text()
    for path in (f"/developers/apps/{client.client_id}", f"/developers/apps/{client.client_id}/edit"):
        assert (await stranger.get(path)).status == 404
    csrf = await csrf_of(stranger)
    response = await stranger.post(
        f"/developers/apps/{client.client_id}/secret", data={"csrf_token": csrf, "action": "issue"}
    )
    assert response.status == 404
    response = await stranger.post(
        f"/developers/apps/{client.client_id}/edit", data={"csrf_token": csrf, **APPLICATION}
    )
    assert response.status == 404
    assert (await stranger.get("/developers/apps/no-such-app")).status == 404


async def test_forms_without_the_session_csrf_token_are_refused(
    developer: TestClient, registry: Registry
) -> None:
    response = await developer.post(
        "/developers/apply", data={**APPLICATION, "scope": "photos:read", "csrf_token": "forged"}
    )
    assert response.status == 400
    assert [c for c in await registry.clients.list() if c.contact_email == "forged"] == []
    client = await applied(developer, registry)
    await platform.approve(registry, client.client_id)
    response = await developer.post(
        f"/developers/apps/{client.client_id}/secret", data={"csrf_token": "forged", "action": "issue"}
    )
    assert response.status == 400
    assert not await platform.secret_issued(registry, client.client_id)


def secret_on(page: str) -> str:
    match = re.search(r'id="client-secret">([^<]+)<', page)
    assert match, "no secret on the page"
    return match.group(1)


async def token_status(http: TestClient, client_id: str, secret: str) -> int:
    """What the token endpoint says to the client's credentials (400 invalid_grant: they passed)."""
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": "https://printer.example/callback",
        },
        headers=basic(client_id, secret),
    )
    return response.status


async def test_the_secret_is_shown_once_after_approval_and_rotates_with_overlap(
    developer: TestClient, registry: Registry, http: TestClient
) -> None:
    client = await applied(developer, registry)
    csrf = await csrf_of(developer)
    secret_path = f"/developers/apps/{client.client_id}/secret"
    response = await developer.post(secret_path, data={"csrf_token": csrf, "action": "issue"})
    assert response.status == 409 and "once it is approved" in await response.text()
    await platform.approve(registry, client.client_id)
    page = await (await developer.get(f"/developers/apps/{client.client_id}")).text()
    assert client.client_id in page and "Show the client secret" in page
    response = await developer.post(secret_path, data={"csrf_token": csrf, "action": "issue"})
    first_secret = secret_on(await response.text())
    assert response.headers["Cache-Control"].startswith("no-store")
    assert await token_status(http, client.client_id, first_secret) == 400  # invalid_grant: authenticated
    again = await developer.post(secret_path, data={"csrf_token": csrf, "action": "issue"})
    assert again.status == 409 and "client-secret" not in await again.text()
    assert "client-secret" not in await (await developer.get(f"/developers/apps/{client.client_id}")).text()
    rotated = await developer.post(secret_path, data={"csrf_token": csrf, "action": "rotate"})
    new_secret = secret_on(await rotated.text())
    assert new_secret != first_secret
    assert await token_status(http, client.client_id, new_secret) == 400
    assert await token_status(http, client.client_id, first_secret) == 400  # still works: the overlap
    events = [e.event for e in await registry.audit.for_client(client.client_id)]
    assert {"client.applied", "client.approved", "client.secret_issued", "client.secret_rotated"} <= set(
        events
    )


async def test_a_rejected_app_shows_the_reason_and_never_a_secret(
    developer: TestClient, registry: Registry
) -> None:
    client = await applied(developer, registry)
    await platform.reject(registry, client.client_id, "The privacy policy page is empty.")
    page = await (await developer.get(f"/developers/apps/{client.client_id}")).text()
    assert "Rejected: <strong>The privacy policy page is empty.</strong>" in page
    assert "Show the client secret" not in page and 'id="client-id"' not in page


async def test_widening_goes_to_review_while_the_approved_settings_keep_working(
    developer: TestClient, registry: Registry
) -> None:
    client = await applied(developer, registry)
    await platform.approve(registry, client.client_id)
    csrf = await csrf_of(developer)
    fields = [
        ("csrf_token", csrf),
        *{**APPLICATION, "client_name": "Photo Printer Pro", "description": "Prints, better."}.items(),
        ("redirect_uris", APPLICATION["redirect_uris"] + "\nhttps://printer.example/new"),
        ("scope", "photos:read"),
        ("scope", "photos:write"),
    ]
    fields = [(k, v) for k, v in fields if not (k == "redirect_uris" and "new" not in v)]
    response = await developer.post(
        f"/developers/apps/{client.client_id}/edit", data=fields, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"].endswith("?edited=review")
    changed = await registry.clients.load(client.client_id)
    assert changed is not None and changed.active
    # the description applies at once; a new name, like wider access, waits for the reviewer
    assert changed.client_name == "Photo Printer" and changed.description == "Prints, better."
    assert changed.scope == ("photos:read",) and "https://printer.example/new" not in changed.redirect_uris
    assert changed.pending_changes == {
        "scope": ["photos:read", "photos:write"],
        "redirect_uris": [*client.redirect_uris, "https://printer.example/new"],
        "client_name": "Photo Printer Pro",
    }
    page = await (await developer.get(f"/developers/apps/{client.client_id}")).text()
    assert "Change waiting for review" in page and "+ https://printer.example/new" in page
    await platform.approve(registry, client.client_id)
    approved = await registry.clients.load(client.client_id)
    assert approved is not None and approved.pending_changes is None
    assert approved.scope == ("photos:read", "photos:write")
    assert "https://printer.example/new" in approved.redirect_uris
    assert approved.client_name == "Photo Printer Pro"


async def test_narrowing_applies_at_once_and_bad_changes_are_refused_on_the_form(
    developer: TestClient, registry: Registry
) -> None:
    client = await applied(developer, registry, redirect_uris="https://printer.example/callback")
    await platform.approve(registry, client.client_id)
    csrf = await csrf_of(developer)
    path = f"/developers/apps/{client.client_id}/edit"
    bad = {
        **APPLICATION,
        "csrf_token": csrf,
        "redirect_uris": "https://printer.example/cb#frag",
        "scope": "photos:read",
    }
    response = await developer.post(path, data=bad)
    assert response.status == 400 and "must not contain a fragment" in await response.text()
    good = {
        **APPLICATION,
        "csrf_token": csrf,
        "logo_uri": "",
        "redirect_uris": "https://printer.example/callback",
    }
    response = await developer.post(path, data={**good, "scope": "photos:read"}, allow_redirects=False)
    assert response.headers["Location"].endswith("?edited=saved")
    changed = await registry.clients.load(client.client_id)
    assert changed is not None and changed.logo_uri is None and changed.pending_changes is None


async def test_usage_counts_consents_and_tokens_of_the_last_day(
    developer: TestClient, registry: Registry, http: TestClient, user: User
) -> None:
    client = await applied(developer, registry)
    await platform.approve(registry, client.client_id)
    csrf = await csrf_of(developer)
    response = await developer.post(
        f"/developers/apps/{client.client_id}/secret", data={"csrf_token": csrf, "action": "issue"}
    )
    secret = secret_on(await response.text())
    await registry.consents.grant(user.user_id, client.client_id, ("photos:read",))
    counts = registry.token_counts
    for _ in range(3):
        counts.count(client.client_id)  # as the token endpoint does: in process
    await counts.flush()  # what this replica does every few seconds; the page is another replica's
    page = await (await developer.get(f"/developers/apps/{client.client_id}")).text()
    assert 'id="consent-count">1<' in page and 'id="token-count">3<' in page
    assert secret  # the counts come from the token endpoint, which adds no round trip per token
