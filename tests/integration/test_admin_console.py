"""The admin console, /admin (issue 15, item 2): only admins reach it (everyone else: page not
found, for pages and forms alike); applications pending first and filtered by status; approve,
reject and suspend with a reason, reinstate; a pending change as a diff; the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from auth_server import platform
from auth_server.app import create_app
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import hidden, sign_in
from tests.support.servers import PASSWORD, ClientFactory

Factory = Callable[..., Awaitable[TestClient]]


async def browser_of(aiohttp_client: Factory, settings: Settings, user: User) -> TestClient:
    browser = await aiohttp_client(create_app(settings))
    assert await sign_in(browser, user.username, PASSWORD) == 303
    return browser


@pytest.fixture
async def admin(aiohttp_client: Factory, settings: Settings, registry: Registry) -> TestClient:
    operator = await registry.users.create(f"admin-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    await registry.users.set_admin(operator.user_id, True)
    return await browser_of(aiohttp_client, settings, operator)


async def pending(new_client: ClientFactory, name: str = "Photo Printer") -> Client:
    client, _ = await new_client(name=name, status="pending", registered_via="developer")
    return client


async def decide(browser: TestClient, client_id: str, decision: str, reason: str = "") -> tuple[int, str]:
    page = await (await browser.get(f"/admin/apps/{client_id}")).text()
    response = await browser.post(
        f"/admin/apps/{client_id}",
        data={"csrf_token": hidden(page, "csrf_token"), "decision": decision, "reason": reason},
    )
    return response.status, await response.text()


async def test_not_signed_in_is_sent_to_sign_in(http: TestClient) -> None:
    response = await http.get("/admin", allow_redirects=False)
    assert response.headers["Location"] == "/login?return_to=%2Fadmin"


async def test_a_user_who_is_not_admin_cannot_see_or_post_anything(
    aiohttp_client: Factory, settings: Settings, user: User, new_client: ClientFactory, registry: Registry
) -> None:
    client = await pending(new_client)
    browser = await browser_of(aiohttp_client, settings, user)
    for path in ("/admin", "/admin?status=pending", f"/admin/apps/{client.client_id}"):
        response = await browser.get(path)
        assert response.status == 404, path
        assert client.client_name not in await response.text()
    csrf = hidden(await (await browser.get("/login")).text(), "csrf_token")
    response = await browser.post(
        f"/admin/apps/{client.client_id}", data={"csrf_token": csrf, "decision": "approve"}
    )
    assert response.status == 404
    stored = await registry.clients.load(client.client_id)
    assert stored is not None and stored.status == "pending"


async def test_the_list_puts_pending_first_and_filters_by_status(
    admin: TestClient, new_client: ClientFactory
) -> None:
    approved, _ = await new_client(name=f"Live-{uuid.uuid4().hex[:6]}")
    waiting = await pending(new_client, name=f"Waiting-{uuid.uuid4().hex[:6]}")
    page = await (await admin.get("/admin")).text()
    assert page.index(waiting.client_name) < page.index(approved.client_name)
    only_pending = await (await admin.get("/admin?status=pending")).text()
    assert waiting.client_name in only_pending and approved.client_name not in only_pending


async def test_approve_reject_suspend_reinstate_through_the_pages(
    admin: TestClient, new_client: ClientFactory, registry: Registry
) -> None:
    client = await pending(new_client)
    status, page = await decide(admin, client.client_id, "suspend", "x")
    assert status == 409 and "only an approved one can be suspended" in page
    status, page = await decide(admin, client.client_id, "approve")
    assert status == 200 and "Done: approve." in page
    status, page = await decide(admin, client.client_id, "suspend")
    assert status == 400 and "Give a reason to suspend" in page
    status, page = await decide(admin, client.client_id, "suspend", "Abuse report")
    stored = await registry.clients.load(client.client_id)
    assert stored is not None and stored.status == "suspended" and stored.review_note == "Abuse report"
    status, page = await decide(admin, client.client_id, "reinstate")
    assert "client.reinstated" in page and "client.suspended" in page and "Abuse report" in page
    other = await pending(new_client)
    status, page = await decide(admin, other.client_id, "reject", "No privacy policy")
    rejected = await registry.clients.load(other.client_id)
    assert (
        rejected is not None and rejected.status == "rejected" and rejected.review_note == "No privacy policy"
    )
    events = [e for e in await registry.audit.for_client(other.client_id) if e.event == "client.rejected"]
    assert events and events[0].details["reviewer"].startswith("admin-")


async def test_a_pending_change_is_shown_as_a_diff_and_approved(
    admin: TestClient, new_client: ClientFactory, registry: Registry
) -> None:
    client, _ = await new_client(scope="photos:read")
    await registry.clients.set_pending_changes(
        client.client_id, {"redirect_uris": [*client.redirect_uris, "https://printer.example/new"]}
    )
    page = await (await admin.get(f"/admin/apps/{client.client_id}")).text()
    assert "Change waiting for review" in page and "<ins>https://printer.example/new</ins>" in page
    await decide(admin, client.client_id, "approve")
    changed = await registry.clients.load(client.client_id)
    assert changed is not None and "https://printer.example/new" in changed.redirect_uris
    assert changed.pending_changes is None


async def test_a_forged_form_changes_nothing(
    admin: TestClient, new_client: ClientFactory, registry: Registry
) -> None:
    client = await pending(new_client)
    response = await admin.post(
        f"/admin/apps/{client.client_id}", data={"csrf_token": "x", "decision": "approve"}
    )
    assert response.status == 400
    stored = await registry.clients.load(client.client_id)
    assert stored is not None and stored.status == "pending"
    assert not (await platform.secret_issued(registry, client.client_id))
