"""The authorization-code flow as a person lives it: a real headless Chromium on the login and consent pages.

A stand-in third-party site ("Photo Printer") runs next to the authorization server on its own loopback
port. It sends the browser to ``/oauth2/authorize`` with PKCE and a ``state``, receives the browser back
at ``/callback`` and, when a code arrives, redeems it at the token endpoint with HTTP Basic client
authentication, exactly as a confidential web client would. The browser only ever sees the HTML pages.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp import web
from playwright.async_api import Page, Response, expect

from auth_server.stores.users import User
from tests.e2e.browser import Browser
from tests.support.flow import Pkce, basic
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

CLIENT_NAME = "Photo Printer"
PHOTOS_READ = "See your photos and their titles"  # the default description of photos:read


@dataclass
class ClientSite:
    """The third-party web application: starts authorization requests and handles their answers."""

    issuer: str
    port: int = 0
    client_id: str = ""
    secret: str = ""
    pending: dict[str, str] = field(default_factory=dict)  # state -> PKCE verifier, as a client keeps it
    callbacks: list[dict[str, str]] = field(default_factory=list)  # every query /callback received
    tokens: list[dict[str, Any]] = field(default_factory=list)  # every successful token response

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.origin}/callback"

    def authorization_url(self, scope: str = "photos:read") -> tuple[str, str]:
        """A fresh authorization request; return its URL and its state."""
        # Spaces, '&', '=', '+' and '/' are all legal in state (RFC 6749 §A.5): they must round-trip.
        state = f"st {secrets.token_urlsafe(12)} &a=b+c/d"
        pkce = Pkce.new()
        self.pending[state] = pkce.verifier
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": scope,
                "state": state,
                "code_challenge": pkce.challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.issuer}/oauth2/authorize?{query}", state

    async def callback(self, request: web.Request) -> web.Response:
        received = {key: request.query.getone(key) for key in request.query}
        self.callbacks.append(received)
        shown = {"state": received.get("state", ""), "iss": received.get("iss", "")}
        verifier = self.pending.pop(received.get("state", ""), None)
        if verifier is None:
            return _page("unknown state", shown, status=400)
        if "error" in received:
            return _page("authorization refused", {**shown, "error": received["error"]})
        # RFC 6749 §2.3.1: id and secret are form-encoded before they go into the Basic credentials.
        credentials = basic(quote_plus(self.client_id), quote_plus(self.secret))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.issuer}/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": received.get("code", ""),
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": verifier,
                },
                headers=credentials,
            ) as response,
        ):
            body = await response.json()
        if response.status != 200:
            failure = f"{body.get('error')}: {body.get('error_description')}"
            return _page("token exchange failed", {**shown, "error": failure})
        self.tokens.append(body)
        return _page("token ok", {**shown, "scope": body["scope"]})

    async def framing(self, request: web.Request) -> web.Response:
        """A page that tries to show the authorization server's pages inside its own (clickjacking)."""
        frames = "".join(
            f'<iframe name="{name}" src="{html.escape(self.issuer + path)}"></iframe>'
            for name, path in (("login", "/login"), ("metadata", "/.well-known/oauth-authorization-server"))
        )
        return web.Response(
            text=f"<!doctype html><title>Win a prize</title>{frames}", content_type="text/html"
        )


def _page(outcome: str, values: dict[str, str], *, status: int = 200) -> web.Response:
    """What the client shows its user; every value in an element whose id is its name."""
    items = "".join(f'<dd id="{name}">{html.escape(value)}</dd>' for name, value in values.items())
    text = f'<!doctype html><title>Photo Printer</title><h1 id="outcome">{outcome}</h1><dl>{items}</dl>'
    return web.Response(text=text, status=status, content_type="text/html")


@pytest.fixture
async def client_site(live_server: LiveServer) -> AsyncIterator[ClientSite]:
    """The stand-in site, listening, and registered as a confidential client of the live server."""
    site = ClientSite(issuer=live_server.url)
    app = web.Application()
    app.router.add_get("/callback", site.callback)
    app.router.add_get("/framing", site.framing)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        # Port 0: the kernel picks a free port atomically; the redirect URI is registered with it.
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        site.port = runner.addresses[0][1]
        client, secret = await live_server.registry.clients.create(
            name=CLIENT_NAME,
            redirect_uris=[site.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            scope=["photos:read", "photos:write"],
            auth_method="client_secret_basic",
        )
        assert secret is not None
        site.client_id, site.secret = client.client_id, secret
        yield site
    finally:
        await runner.cleanup()


async def assert_cannot_be_framed(response: Response) -> None:
    headers = await response.all_headers()
    assert headers.get("x-frame-options") == "DENY"
    directives: dict[str, list[str]] = {}
    for directive in headers.get("content-security-policy", "").split(";"):
        name, *values = directive.split() or [""]
        directives[name.lower()] = values
    assert directives.get("frame-ancestors") == ["'none'"]


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def test_sign_in_and_allow_lets_the_client_redeem_its_code(
    live_server: LiveServer, client_site: ClientSite, browser: Browser, person: User
) -> None:
    page = browser.page
    url, state = client_site.authorization_url("photos:read")

    login = await page.goto(url)
    assert login is not None
    assert login.status == 200
    assert urlsplit(login.url).path == "/login"
    await assert_cannot_be_framed(login)
    await expect(page).to_have_title("Sign in · Tessera")

    async with page.expect_response(lambda r: urlsplit(r.url).path == "/oauth2/authorize") as shown:
        await sign_in(page, person.username, PASSWORD)
    consent = await shown.value
    assert consent.status == 200
    await assert_cannot_be_framed(consent)
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    await expect(page.locator("li[data-scope]")).to_have_count(1)  # only what was asked, not all it may ask
    await expect(page.locator('li[data-scope="photos:read"]')).to_contain_text(PHOTOS_READ)
    await expect(page.locator("main")).to_contain_text(f"Signed in as {person.username}")
    await expect(page.locator("main")).to_contain_text(f"sent back to 127.0.0.1:{client_site.port}")

    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(lambda u: u.startswith(f"{client_site.redirect_uri}?"))
    await expect(page.locator("#outcome")).to_have_text("token ok")
    await expect(page.locator("#scope")).to_have_text("photos:read")
    await expect(page.locator("#state")).to_have_text(state)
    await expect(page.locator("#iss")).to_have_text(live_server.url)

    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", f"{live_server.url}/login", 200),
        ("POST", f"{live_server.url}/login", 303),
        ("GET", f"{live_server.url}/oauth2/authorize", 200),
        ("POST", f"{live_server.url}/consent", 303),
        ("GET", client_site.redirect_uri, 200),
    ]
    [received] = client_site.callbacks
    assert set(received) == {"code", "state", "iss"}
    assert received["state"] == state
    assert received["iss"] == live_server.url

    [tokens] = client_site.tokens
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "photos:read"
    assert tokens["refresh_token"]
    async with aiohttp.ClientSession() as session, session.get(f"{live_server.url}/oauth2/jwks") as jwks:
        keys = (await jwks.json())["keys"]
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid))
    claims = jwt.decode(
        tokens["access_token"],
        key,
        algorithms=[live_server.settings.signing_alg],
        audience=live_server.settings.access_token_audience,
        issuer=live_server.url,
    )
    assert claims["sub"] == person.subject  # the person who signed in in the browser
    assert claims["client_id"] == client_site.client_id
    assert claims["scope"] == "photos:read"

    # Consent is remembered: the same request again goes straight back to the client, no pages shown.
    browser.documents.clear()
    again_url, again_state = client_site.authorization_url("photos:read")
    again = await page.goto(again_url)
    assert again is not None
    assert again.url.startswith(f"{client_site.redirect_uri}?")
    await expect(page.locator("#outcome")).to_have_text("token ok")
    await expect(page.locator("#state")).to_have_text(again_state)
    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", client_site.redirect_uri, 200),
    ]
    assert len(client_site.tokens) == 2


async def test_deny_sends_access_denied_with_the_state(
    live_server: LiveServer, client_site: ClientSite, browser: Browser, person: User
) -> None:
    page = browser.page
    url, state = client_site.authorization_url("photos:read photos:write")
    await page.goto(url)
    await sign_in(page, person.username, PASSWORD)
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    await expect(page.locator("li[data-scope]")).to_have_count(2)

    await page.get_by_role("button", name="Deny").click()
    await page.wait_for_url(lambda u: u.startswith(f"{client_site.redirect_uri}?"))
    await expect(page.locator("#outcome")).to_have_text("authorization refused")
    await expect(page.locator("#error")).to_have_text("access_denied")
    await expect(page.locator("#state")).to_have_text(state)

    [received] = client_site.callbacks
    assert received["error"] == "access_denied"
    assert received["state"] == state
    assert received["iss"] == live_server.url
    assert "code" not in received
    assert client_site.tokens == []

    # Denying records no consent: asking again shows the consent page again (already signed in).
    again_url, _ = client_site.authorization_url("photos:read photos:write")
    again = await page.goto(again_url)
    assert again is not None
    assert again.status == 200
    assert urlsplit(again.url).path == "/oauth2/authorize"
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    assert len(client_site.callbacks) == 1


async def test_wrong_password_shows_an_error_and_goes_no_further(
    live_server: LiveServer, client_site: ClientSite, browser: Browser, person: User
) -> None:
    page = browser.page
    url, _ = client_site.authorization_url("photos:read")
    await page.goto(url)

    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await sign_in(page, person.username, PASSWORD + "!")
    assert (await posted.value).status == 400
    await expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    await expect(page.get_by_role("heading")).to_have_text("Sign in to Tessera")
    assert urlsplit(page.url).path == "/login"
    await expect(page.get_by_label("Username")).to_have_value(person.username)
    await expect(page.get_by_label("Password")).to_have_value("")
    await expect(page.locator("#client-name")).to_have_count(0)
    assert client_site.callbacks == []

    # Nobody got signed in: the authorization endpoint still sends this browser to the login page.
    probe = await page.request.get(url, max_redirects=0)
    assert probe.status == 302
    assert urlsplit(probe.headers["location"]).path == "/login"
    await probe.dispose()

    # The error page kept the pending request: the right password now leads on to consent.
    await sign_in(page, person.username, PASSWORD)
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    assert urlsplit(page.url).path == "/oauth2/authorize"
    assert client_site.callbacks == []


async def test_another_site_cannot_frame_the_login_page(
    live_server: LiveServer, client_site: ClientSite, browser: Browser
) -> None:
    page = browser.page
    await page.goto(f"{client_site.origin}/framing")  # resolves once both frames have loaded
    # The control: a page of the same server without anti-framing headers does render in a frame ...
    metadata = page.frame(name="metadata")
    assert metadata is not None
    assert live_server.url in await metadata.locator("body").inner_text()
    # ... while the login page is refused by the browser: no form, nothing to trick anyone into clicking.
    login = page.frame(name="login")
    assert login is not None
    assert await login.locator("#username").count() == 0
    assert await login.locator("form").count() == 0
