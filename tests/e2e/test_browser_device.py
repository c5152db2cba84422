"""The device verification page (RFC 8628 §3.3) as a person lives it, in a real headless Chromium:
a device asks for a code, she opens the link on her "phone" (a 390 px wide window), signs in,
confirms the code, answers the consent page, and the device polling the token endpoint gets its
tokens. Nothing on the way needs JavaScript, and nothing is wider than the phone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Page, ViewportSize, expect

from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.support.device import DEVICE_CODE, device_client
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

PHONE: ViewportSize = {"width": 390, "height": 844}
APP = "Living Room TV"


async def _device_post(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return response.status, await response.json()


async def _fits(page: Page) -> None:
    """No sideways scrolling on the phone."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"


async def test_a_device_is_signed_in_from_a_phone(
    live_server: LiveServer, browser: Browser, person: User
) -> None:
    client, _ = await device_client(live_server.registry, name=APP)
    status, authorization = await _device_post(
        f"{live_server.url}/oauth2/device_authorization",
        {"client_id": client.client_id, "scope": "photos:read offline_access"},
    )
    assert status == 200
    page = browser.page
    await page.set_viewport_size(PHONE)

    # a wrong code first: the page says so, next to the field, and keeps what she typed
    await page.goto(authorization["verification_uri"])
    assert urlsplit(page.url).path == "/login"
    await page.get_by_label("Username").fill(person.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{live_server.url}/device")
    await expect(page).to_have_title("Connect a device · Tessera")
    await _fits(page)
    await page.get_by_label("Code shown on your device").fill("bbbb-bbbb")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("alert")).to_contain_text("That code does not work")
    await expect(page.get_by_label("Code shown on your device")).to_have_attribute("aria-invalid", "true")

    # the link with the code in it: filled in, but she confirms it herself (RFC 8628 §3.3.1)
    response = await page.goto(authorization["verification_uri_complete"])
    assert response is not None and response.status == 200
    assert (await response.all_headers())["x-frame-options"] == "DENY"
    await expect(page.get_by_label("Code shown on your device")).to_have_value(authorization["user_code"])
    await expect(page.locator("#phishing-warning")).to_be_visible()
    await page.get_by_role("button", name="Confirm").click()

    await expect(page).to_have_title("Sign in a device? · Tessera")
    await expect(page.locator("#device-sign-in")).to_contain_text("Device sign-in")
    await expect(page.locator("#client-name")).to_have_text(APP)
    await expect(page.locator('li[data-scope="photos:read"]')).to_be_visible()
    await _fits(page)
    await page.get_by_role("button", name="Allow").click()

    await expect(page.locator("#outcome")).to_have_text("You can return to your device")
    await expect(page.locator("#client-name")).to_have_text(APP)
    await _fits(page)
    assert [path for _, path, _ in browser.trail() if "/device" in path][-2:] == [
        f"{live_server.url}/device",
        f"{live_server.url}/device/consent",
    ]

    status, tokens = await _device_post(
        f"{live_server.url}/oauth2/token",
        {
            "grant_type": DEVICE_CODE,
            "device_code": authorization["device_code"],
            "client_id": client.client_id,
        },
    )
    assert status == 200, tokens
    assert tokens["scope"] == "photos:read offline_access" and tokens["refresh_token"]
