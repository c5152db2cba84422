"""The open platform in a real headless Chromium (issue 15): a developer applies at /developers, an
admin approves at /admin, the developer sees the client id and gets the secret once, and the new
app's first sign-in works (the code flow with PKCE, through the login and consent pages).

With ``TESSERA_SHOTS=DIR`` each console page is also saved as a screenshot at 1280 and 390 px wide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Page, expect

from auth_server.crypto import hash_password
from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.e2e.test_browser_authorization_code import ClientSite, assert_cannot_be_framed, sign_in
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def unregistered_site(live_server: LiveServer) -> AsyncIterator[ClientSite]:
    """The stand-in third-party site, listening, not yet registered: its developer applies for it."""
    site = ClientSite(issuer=live_server.url)
    app = web.Application()
    app.router.add_get("/callback", site.callback)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        site.port = runner.addresses[0][1]
        yield site
    finally:
        await runner.cleanup()


@pytest.fixture
async def operator(live_server: LiveServer) -> User:
    admin = await live_server.registry.users.create(f"admin-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    await live_server.registry.users.set_admin(admin.user_id, True)
    return admin


async def shoot(page: Page, name: str) -> None:
    """Screenshots of the page at a desktop and a phone width, if ``TESSERA_SHOTS`` names a folder."""
    folder = os.environ.get("TESSERA_SHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test helper, once
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=f"{folder}/{name}-{width}.png", full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").first.click()


async def test_a_developer_applies_an_admin_approves_and_the_app_signs_someone_in(
    live_server: LiveServer, unregistered_site: ClientSite, browser: Browser, person: User, operator: User
) -> None:
    page, site = browser.page, unregistered_site
    name = f"Photo Printer {uuid.uuid4().hex[:6]}"  # the admin's list holds other tests' apps too
    response = await page.goto(f"{live_server.url}/developers")
    assert response is not None
    await sign_in(page, person.username, PASSWORD)
    await expect(page.get_by_role("heading", name="Your apps")).to_be_visible()
    await shoot(page, "developers-empty")
    await page.get_by_role("link", name="Apply for an app").first.click()
    await page.get_by_label("App name").fill(name)
    await page.get_by_label("What the app does").fill("Prints your photos and posts them to you.")
    await page.get_by_label("Website").fill(f"{site.origin}/")
    await page.get_by_label("Privacy policy URL").fill(f"{site.origin}/privacy")
    await page.get_by_label("Responsible person").fill("Zhang Wei")
    await page.get_by_label("Contact email").fill("not an address")
    await page.get_by_label("Redirect URIs").fill(site.redirect_uri)
    await page.get_by_label("See your photos and their titles").check()
    await page.get_by_label("Why the app needs it").fill("To print the photos people choose.")
    await page.get_by_role("button", name="Send the application").click()
    await expect(page.locator("#contact_email-error")).to_have_text(
        "This does not look like an email address."
    )
    await expect(page.get_by_label("App name")).to_have_value(name)  # nothing lost
    await shoot(page, "developers-apply-problems")
    await page.get_by_label("Contact email").fill("wei@printer.example")
    await page.get_by_role("button", name="Send the application").click()
    await expect(page.locator("#review-status")).to_contain_text("Pending review")
    await expect(page.locator("#client-id")).to_have_count(0)
    await shoot(page, "developers-app-pending")
    app_url = page.url.split("?")[0]

    await sign_out(page)
    await page.goto(f"{live_server.url}/admin")
    await sign_in(page, operator.username, PASSWORD)
    await expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    await shoot(page, "admin-list")
    await page.get_by_role("link", name=name).click()
    await shoot(page, "admin-app-pending")
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Done: approve.")
    await shoot(page, "admin-app-approved")
    await sign_out(page)

    await page.goto(app_url)
    await sign_in(page, person.username, PASSWORD)  # back to the console's first page
    await page.get_by_role("link", name=name).click()
    assert page.url.split("?")[0] == app_url
    client_id = await page.locator("#client-id").text_content()
    assert client_id
    await page.get_by_role("button", name="Show the client secret").click()
    secret = await page.locator("#client-secret").text_content()
    assert secret
    await shoot(page, "developers-app-secret")
    response = await page.reload()  # the secret is not shown again (the reload re-sends the form)
    assert response is not None and response.status == 409
    await expect(page.locator("#client-secret")).to_have_count(0)
    await page.goto(app_url)
    await shoot(page, "developers-app-approved")
    await page.get_by_role("link", name="Change the app's details").click()
    await shoot(page, "developers-edit")
    response = await page.goto(f"{live_server.url}/developers")
    assert response is not None
    await assert_cannot_be_framed(response)
    await shoot(page, "developers-list")

    site.client_id, site.secret = client_id, secret
    url, state = site.authorization_url("photos:read")
    await page.goto(url)
    await page.get_by_role("button", name="Allow").click()
    await expect(page.locator("#outcome")).to_have_text("token ok")
    assert site.tokens and site.tokens[0]["scope"] == "photos:read"
    assert site.callbacks[0]["state"] == state
