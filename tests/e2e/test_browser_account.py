"""The user in control of what she granted (issue 15), in a real headless Chromium: she unticks a
scope on the consent page and the app gets only the rest; then she takes the app's access back on
``/account`` and its refresh token stops working."""

from __future__ import annotations

from urllib.parse import quote_plus, urlsplit

import aiohttp
import pytest
from playwright.async_api import expect

from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.e2e.test_browser_authorization_code import (
    CLIENT_NAME,
    ClientSite,
    assert_cannot_be_framed,
    client_site,
    sign_in,
)
from tests.support.flow import basic
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e
__all__ = ["client_site"]  # the fixture, shared with the authorization-code browser tests


async def refresh(site: ClientSite, refresh_token: str) -> int:
    """The app refreshes its token, as it would the next day; the status it gets."""
    credentials = basic(quote_plus(site.client_id), quote_plus(site.secret))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{site.issuer}/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers=credentials,
        ) as response,
    ):
        return response.status


async def test_untick_a_scope_then_revoke_the_app_from_the_account_page(
    live_server: LiveServer, client_site: ClientSite, browser: Browser, person: User
) -> None:
    page = browser.page
    url, _ = client_site.authorization_url("photos:read photos:write")
    await page.goto(url)
    await sign_in(page, person.username, PASSWORD)
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    read = page.get_by_role("checkbox", name="See your photos")
    write = page.locator('input[name="scope"][value="photos:write"]')
    await expect(read).to_be_checked()
    await expect(write).to_be_checked()
    await expect(page.get_by_role("radio", name="Until I take it back")).to_be_checked()
    await write.uncheck()
    await page.get_by_role("radio", name="For 30 days").check()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(lambda u: u.startswith(f"{client_site.redirect_uri}?"))
    await expect(page.locator("#outcome")).to_have_text("token ok")
    await expect(page.locator("#scope")).to_have_text("photos:read")  # only what she ticked
    tokens = client_site.tokens[-1]
    assert tokens["scope"] == "photos:read"

    shown = await page.goto(f"{live_server.url}/account")
    assert shown is not None and shown.status == 200
    await assert_cannot_be_framed(shown)
    app = page.locator(f'li.app[data-client-id="{client_site.client_id}"]')
    await expect(app.get_by_role("heading", name=CLIENT_NAME)).to_be_visible()
    await expect(app.locator('li[data-scope="photos:read"]')).to_have_count(1)
    await expect(app.locator('li[data-scope="photos:write"]')).to_have_count(0)
    await app.get_by_role("button", name=f"Take back {CLIENT_NAME}'s access").click()
    await page.wait_for_url(lambda u: urlsplit(u).path == "/account" and "revoked=" in u)
    await expect(page.locator("#revoked-notice")).to_contain_text(f"{CLIENT_NAME} can no longer act for you")
    await expect(page.locator("li.app")).to_have_count(0)
    assert await refresh(client_site, tokens["refresh_token"]) == 400
