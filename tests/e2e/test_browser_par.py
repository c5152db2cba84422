"""Pushed authorization requests (RFC 9126) as a person lives them: a real headless Chromium on the
login and consent pages, sent there by a client that pushed its request from its server first.

The stand-in "Photo Printer" of ``test_browser_authorization_code.py`` is registered here as a
client that must push its requests (``require_pushed_authorization_requests``): it POSTs the request
to ``/oauth2/par`` with its credentials and sends the browser to ``/oauth2/authorize`` with nothing
but ``client_id`` and the ``request_uri`` it got. Each ``request_uri`` is good once, so the browser
must reach every page with exactly one request per step.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import expect

from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.e2e.test_browser_authorization_code import CLIENT_NAME, ClientSite, sign_in
from tests.support.flow import Pkce, basic
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e


@dataclass
class PushingSite(ClientSite):
    """The Photo Printer, pushing each authorization request before it sends the browser on."""

    async def pushed_url(self, scope: str = "photos:read") -> tuple[str, str]:
        """A fresh request, pushed; the URL the browser is sent to, and the request's state."""
        state = f"st {secrets.token_urlsafe(12)}"
        pkce = Pkce.new()
        self.pending[state] = pkce.verifier
        request = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        credentials = basic(quote_plus(self.client_id), quote_plus(self.secret))
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.issuer}/oauth2/par", data=request, headers=credentials) as response,
        ):
            assert response.status == 201, await response.text()
            pushed = await response.json()
        query = urlencode({"client_id": self.client_id, "request_uri": pushed["request_uri"]})
        return f"{self.issuer}/oauth2/authorize?{query}", state


@pytest.fixture
async def pushing_site(live_server: LiveServer) -> AsyncIterator[PushingSite]:
    site = PushingSite(issuer=live_server.url)
    app = web.Application()
    app.router.add_get("/callback", site.callback)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        site.port = runner.addresses[0][1]
        client, secret = await live_server.registry.clients.create(
            name=CLIENT_NAME,
            redirect_uris=[site.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            scope=["photos:read", "photos:write"],
            auth_method="client_secret_basic",
            openid={"require_pushed_authorization_requests": True},
        )
        assert secret is not None
        site.client_id, site.secret = client.client_id, secret
        yield site
    finally:
        await runner.cleanup()


async def test_a_pushed_request_signs_in_consents_and_gets_its_token(
    live_server: LiveServer, pushing_site: PushingSite, browser: Browser, person: User
) -> None:
    page = browser.page
    url, state = await pushing_site.pushed_url()

    login = await page.goto(url)
    assert login is not None and login.status == 200
    assert urlsplit(login.url).path == "/login"
    await expect(page.locator("main")).to_contain_text(CLIENT_NAME)  # the login page names the app

    async with page.expect_response(lambda r: urlsplit(r.url).path == "/oauth2/authorize") as shown:
        await sign_in(page, person.username, PASSWORD)
    consent = await shown.value
    assert consent.status == 200
    consent_url = page.url
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    await expect(page.locator("li[data-scope]")).to_have_count(1)
    await expect(page.locator('li[data-scope="photos:read"]')).to_be_visible()

    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(lambda u: u.startswith(f"{pushing_site.redirect_uri}?"))
    await expect(page.locator("#outcome")).to_have_text("token ok")
    await expect(page.locator("#state")).to_have_text(state)
    await expect(page.locator("#iss")).to_have_text(live_server.url)
    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", f"{live_server.url}/login", 200),
        ("POST", f"{live_server.url}/login", 303),
        ("GET", f"{live_server.url}/oauth2/authorize", 200),
        ("POST", f"{live_server.url}/consent", 303),
        ("GET", pushing_site.redirect_uri, 200),
    ]
    [tokens] = pushing_site.tokens
    assert tokens["scope"] == "photos:read"

    # the consent page's address was good once: going back to it says so, in plain words
    again = await page.goto(consent_url)
    assert again is not None and again.status == 400
    await expect(page.locator("h1")).to_have_text("This page has expired")
    await expect(page.locator("#error-code")).to_have_text("invalid_request_uri")

    # a second pushed request: her consent is remembered, so the browser goes straight back
    browser.documents.clear()
    url, state = await pushing_site.pushed_url()
    await page.goto(url)
    await page.wait_for_url(lambda u: u.startswith(f"{pushing_site.redirect_uri}?"))
    await expect(page.locator("#outcome")).to_have_text("token ok")
    await expect(page.locator("#state")).to_have_text(state)
    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", pushing_site.redirect_uri, 200),
    ]


async def test_a_request_that_was_not_pushed_goes_back_refused(
    live_server: LiveServer, pushing_site: PushingSite, browser: Browser
) -> None:
    url, state = pushing_site.authorization_url()  # the parameters in the URL, not pushed
    await browser.page.goto(url)
    await browser.page.wait_for_url(lambda u: u.startswith(f"{pushing_site.redirect_uri}?"))
    await expect(browser.page.locator("#outcome")).to_have_text("authorization refused")
    await expect(browser.page.locator("#error")).to_have_text("invalid_request")
    await expect(browser.page.locator("#state")).to_have_text(state)
