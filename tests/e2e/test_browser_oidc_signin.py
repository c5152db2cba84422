""" "Sign in with Photo Warehouse" as a person lives it: a real headless Chromium on the Photo Printer
(examples/photo_printer, an OpenID Connect relying party) and on Tessera's pages.

She signs in at Tessera, consents, and the printer greets her by nickname with her avatar. Its
"Sign out" signs her out of Tessera too (RP-initiated logout), and signing out at Tessera signs her
out of the printer (back-channel logout).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from tests.e2e.browser import Browser
from tests.integration.test_photo_printer import (
    AVATAR,
    LOGOUT_WAIT,
    NICKNAME,
    Printer,
    running_printer,
    running_warehouse,
)
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def printer(live_server: LiveServer, database_url: str) -> AsyncIterator[Printer]:
    """The Photo Warehouse and the Photo Printer, and a user with a nickname, an avatar and photos."""
    async with (
        running_warehouse(live_server, database_url) as warehouse,
        running_printer(live_server, warehouse) as running,
    ):
        yield running


def _csp_violations(page: Page) -> list[str]:
    """Console errors about the Content-Security-Policy, collected from now on."""
    violations: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", seen)
    return violations


async def _sign_in_with_photo_warehouse(browser: Browser, live: LiveServer, printer: Printer) -> None:
    page = browser.page
    await page.goto(f"{printer.url}/")
    await page.get_by_role("link", name="Sign in with Photo Warehouse").click()
    await page.wait_for_url(f"{live.url}/login*")  # at Tessera: the printer never sees this page
    await page.get_by_label("Username").fill(printer.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#client-name")).to_have_text("Photo Printer")
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(f"{printer.url}/")


async def _expect_greeting(page: Page) -> None:
    await expect(page.locator("#greeting")).to_have_text(f"Hello, {NICKNAME}")
    avatar = page.locator("#avatar")
    await expect(avatar).to_be_visible()
    assert await avatar.get_attribute("src") == AVATAR
    # the image really loaded: the printer's CSP lets data: avatars through
    assert await avatar.evaluate("image => image.complete && image.naturalWidth > 0")
    await expect(page.locator("#account")).to_contain_text(NICKNAME)


async def test_sign_in_greets_her_and_sign_out_ends_both_sessions(
    live_server: LiveServer, printer: Printer, browser: Browser
) -> None:
    page = browser.page
    violations = _csp_violations(page)
    await _sign_in_with_photo_warehouse(browser, live_server, printer)
    await _expect_greeting(page)
    assert PASSWORD not in await page.content()

    await page.get_by_role("link", name="Choose photos to print").click()
    await expect(page.locator("ul.photos li")).to_have_count(len(printer.photo_ids))
    await expect(page.locator("#account")).to_contain_text(NICKNAME)

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{printer.url}/?state=*")
    await expect(page.locator("#signed-out")).to_have_text(
        "You have signed out of Photo Printer and Photo Warehouse."
    )
    await expect(page.get_by_role("link", name="Sign in with Photo Warehouse")).to_be_visible()
    await expect(page.locator("#account")).to_have_count(0)
    # through Tessera's end-session endpoint, which asked nothing (the printer sent its ID token)
    assert ("GET", f"{live_server.url}/oauth2/logout", 302) in browser.trail()

    await page.goto(f"{live_server.url}/login")  # signed out at Tessera too: the sign-in form
    await expect(page.get_by_label("Password")).to_be_visible()
    await page.goto(f"{printer.url}/photos")  # and the printer's pages want a sign-in again
    await page.wait_for_url(f"{printer.url}/")
    assert violations == []


async def test_signing_out_at_tessera_signs_her_out_of_the_printer(
    live_server: LiveServer, printer: Printer, browser: Browser
) -> None:
    page = browser.page
    await _sign_in_with_photo_warehouse(browser, live_server, printer)
    await _expect_greeting(page)

    await page.goto(f"{live_server.url}/login")  # Tessera's own page: "You are signed in as …"
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Password")).to_be_visible()

    # Tessera tells the printer by a back-channel logout; her next page there shows her signed out
    deadline = time.monotonic() + LOGOUT_WAIT
    while True:
        await page.goto(f"{printer.url}/")
        if await page.get_by_role("link", name="Sign in with Photo Warehouse").count():
            break
        assert time.monotonic() < deadline, "the printer still shows her signed in"
        await page.wait_for_timeout(200)
    await expect(page.locator("#greeting")).to_have_count(0)
    await expect(page.locator("#account")).to_have_count(0)
