"""Passkeys (issue 18) in a real headless Chromium, with Chromium's virtual authenticator (the
DevTools protocol's WebAuthn domain: CTAP2, an internal platform authenticator with resident keys
and user verification): she adds a passkey on ``/account/security``, signs in with it alone (no
username typed), and uses it as the second step after her password. The pages run only the
passkey script their CSP allows by its hash.

WebAuthn refuses IP addresses as relying-party ids, so the server's issuer here is
``http://localhost:PORT`` (a secure context for the browser, as in ``tessera dev``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.async_api import CDPSession, ConsoleMessage, expect

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.crypto import hash_password
from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.e2e.test_browser_authorization_code import assert_cannot_be_framed
from tests.support.servers import PASSWORD, LiveServer, free_port, make_settings
from tests.support.services import Services

pytestmark = pytest.mark.e2e


@pytest.fixture
async def localhost_server(
    database_url: str, backing: Services, redis_prefix: str
) -> AsyncIterator[LiveServer]:
    """The authorization server on a loopback port, its issuer ``http://localhost:PORT``."""
    port = free_port()
    url = f"http://localhost:{port}"
    settings = make_settings(database_url, backing.redis_url, redis_prefix, issuer=url)
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield LiveServer(url, settings, app[REGISTRY])
    finally:
        await runner.cleanup()


@pytest.fixture
async def her(localhost_server: LiveServer) -> User:
    return await localhost_server.registry.users.create(
        f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD)
    )


async def virtual_authenticator(browser: Browser) -> tuple[CDPSession, str]:
    """A passkey-capable authenticator in the page's browser (what a phone or a laptop's
    fingerprint reader is to a real one): it verifies its user, every time, silently."""
    cdp = await browser.page.context.new_cdp_session(browser.page)
    await cdp.send("WebAuthn.enable")
    added: dict[str, Any] = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


async def test_add_a_passkey_sign_in_with_it_and_use_it_as_the_second_step(
    localhost_server: LiveServer, browser: Browser, her: User
) -> None:
    page, server = browser.page, localhost_server
    refused_scripts: list[str] = []
    page.on(
        "console",
        lambda m: refused_scripts.append(m.text) if _csp_violation(m) else None,
    )
    cdp, authenticator = await virtual_authenticator(browser)

    # she signs in with her password and opens her security page
    await page.goto(f"{server.url}/login?return_to=/account/security")
    await page.get_by_label("Username").fill(her.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{server.url}/account/security")
    shown = await page.reload()
    assert shown is not None
    await assert_cannot_be_framed(shown)
    await expect(page.locator("#two-step-state")).to_have_text("Off")

    # she adds a passkey: the authenticator makes a discoverable credential for this site
    await page.get_by_label("Name for a new passkey").fill("My laptop")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    await page.get_by_role("link", name="I have saved them").click()
    await expect(page.locator("#two-step-state")).to_have_text("On")
    await expect(page.locator("#passkey-list li")).to_have_count(1)
    await expect(page.locator("#passkey-list")).to_contain_text("My laptop")
    credentials = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))[
        "credentials"
    ]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]
    assert credentials[0]["rpId"] == "localhost"
    passkeys = await server.registry.two_step.passkeys(her.user_id)
    assert [p.name for p in passkeys] == ["My laptop"] and passkeys[0].last_used_at is None

    # signed out, she signs in with the passkey alone: no username, no password
    await page.context.clear_cookies()
    await page.goto(f"{server.url}/login?return_to=/account/security")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url(f"{server.url}/account/security")
    await expect(page.locator("li.here")).to_contain_text("with a passkey")
    # (the password session of before was only forgotten by the browser: it lives on, listed)
    assert {s.session.amr for s in await server.registry.sessions.signed_in(her.subject)} == {
        ("pwd",),
        ("swk", "mfa"),
    }
    assert (await server.registry.two_step.passkeys(her.user_id))[0].last_used_at is not None

    # signed out again: her password is now only the first step, and the passkey the second
    await page.context.clear_cookies()
    await page.goto(f"{server.url}/login?return_to=/account/security")
    await page.get_by_label("Username").fill(her.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{server.url}/login/two-step")
    await expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
    await page.get_by_role("button", name="Use a passkey").click()
    await page.wait_for_url(f"{server.url}/account/security")
    await expect(page.locator("li.here")).to_contain_text("with two steps")
    amrs = {s.session.amr for s in await server.registry.sessions.signed_in(her.subject)}
    assert ("pwd", "swk", "mfa") in amrs

    # she removes it (her last second step: her password is asked for), and two-step is off
    await page.get_by_label("Your password (this is your last second step)").fill(PASSWORD)
    await page.get_by_role("button", name="Remove the passkey My laptop").click()
    await expect(page.locator("#notice")).to_contain_text("The passkey was removed")
    await expect(page.locator("#two-step-state")).to_have_text("Off")
    assert refused_scripts == []
    assert urlsplit(page.url).path == "/account/security"


def _csp_violation(message: ConsoleMessage) -> bool:
    return "Content Security Policy" in message.text
