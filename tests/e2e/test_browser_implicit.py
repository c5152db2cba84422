"""The implicit grant (RFC 6749 §4.2) as a browser lives it: a real headless Chromium and a stand-in SPA.

A stand-in single-page app ("Photo Gallery") is served from its own loopback port. Its callback page
is static HTML whose inline script reads ``location.hash`` with ``URLSearchParams`` and writes what
it found into the page, as an SPA would. The token travels only in the URI fragment, which browsers
never send to a server: the SPA's server records every request it gets, and the test checks that
the access token is in none of them. The deprecated grant (RFC 9700 §2.1.2) is available only to a
client registered for it; everyone else gets ``unsupported_response_type``, in the fragment too.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp import web
from playwright.async_api import Page, Response, expect

from auth_server.clients import Client
from auth_server.schema import SCHEMA
from auth_server.stores.users import User
from tests.e2e.browser import Browser, location
from tests.support.flow import Pkce
from tests.support.servers import PASSWORD, LiveServer

pytestmark = pytest.mark.e2e

CLIENT_NAME = "Photo Gallery"
TOKEN_PARAMS = {"access_token", "token_type", "expires_in", "scope", "state", "iss"}
ERROR_PARAMS = {"error", "error_description", "state", "iss"}

# The SPA's callback page: everything it learns comes from the fragment, read by its own script.
CALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Photo Gallery</title></head>
<body>
<h1>Photo Gallery</h1>
<pre id="result"></pre>
<script>
  const params = new URLSearchParams(window.location.hash.slice(1));
  document.getElementById("result").textContent = JSON.stringify({
    pairs: Array.from(params.entries()),
    search: window.location.search,
    referrer: document.referrer,
  });
</script>
</body></html>
"""


@dataclass(frozen=True)
class Seen:
    """One request as the SPA's server received it."""

    method: str
    path_qs: str
    headers: dict[str, str]  # names lower-cased


@dataclass
class Spa:
    """The stand-in single-page app's origin server: static files only, and a log of what it was sent."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/app/callback"

    def callbacks(self) -> list[Seen]:
        return [s for s in self.seen if urlsplit(s.path_qs).path == "/app/callback"]

    def assert_never_received(self, secret: str) -> None:
        """Neither a path, a query string nor a header (Referer included) ever carried ``secret``."""
        for request in self.seen:
            assert secret not in request.path_qs, request
            for name, value in request.headers.items():
                assert secret not in value, f"{name} of {request.path_qs}"

    @web.middleware
    async def record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # raw_path is the request-target exactly as sent (query string included, still encoded).
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.seen.append(Seen(request.method, request.raw_path, headers))
        return await handler(request)


async def callback_page(request: web.Request) -> web.Response:
    return web.Response(text=CALLBACK_PAGE, content_type="text/html")


@pytest.fixture
async def spa() -> AsyncIterator[Spa]:
    site = Spa()
    app = web.Application(middlewares=[site.record])
    app.router.add_get("/app/callback", callback_page)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        site.port = runner.addresses[0][1]
        yield site
    finally:
        await runner.cleanup()


async def register(live_server: LiveServer, spa: Spa, grant_types: list[str]) -> Client:
    """A public client (no secret: it lives in the browser) whose redirect URI is the SPA's callback."""
    client, secret = await live_server.registry.clients.create(
        name=CLIENT_NAME,
        redirect_uris=[spa.redirect_uri],
        grant_types=grant_types,
        scope=["photos:read"],
        auth_method="none",
    )
    assert secret is None
    return client


def authorization_url(
    live_server: LiveServer, client_id: str, redirect_uri: str, state: str | None, **extra: str
) -> str:
    params = {
        "response_type": "token",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "photos:read",
        **extra,
    }
    if state is not None:
        params["state"] = state
    return f"{live_server.url}/oauth2/authorize?{urlencode(params)}"


def new_state() -> str:
    # Spaces, '&', '=', '+' and '/' are all legal in state (RFC 6749 §A.5): they must round-trip.
    return f"st {secrets.token_urlsafe(12)} &a=b+c/d"


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def seen_by_script(page: Page, spa: Spa) -> dict[str, str]:
    """What the SPA's script read from the fragment (each name exactly once), on its callback page."""
    assert page.url.startswith(f"{spa.redirect_uri}#"), page.url
    await expect(page.locator("#result")).not_to_be_empty()
    result: dict[str, Any] = json.loads(await page.locator("#result").inner_text())
    assert result["search"] == ""  # nothing at all in the query: the server side of the SPA learns nothing
    assert result["referrer"] == ""  # the authorization server's URL is not leaked to the client either
    names = [name for name, _ in result["pairs"]]
    assert len(names) == len(set(names)), names
    return dict(result["pairs"])


async def assert_redirect_not_cached_nor_referred(response: Response) -> None:
    headers = await response.all_headers()
    assert headers.get("cache-control") == "no-store"
    assert headers.get("referrer-policy") == "no-referrer"


async def verified_claims(live_server: LiveServer, access_token: str) -> dict[str, Any]:
    """The token's claims, its signature checked with the key the server publishes in its JWK Set."""
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
    async with aiohttp.ClientSession() as session, session.get(f"{live_server.url}/oauth2/jwks") as jwks:
        assert jwks.status == 200
        keys = (await jwks.json())["keys"]
    matching = [k for k in keys if k["kid"] == header["kid"]]
    assert len(matching) == 1
    claims: dict[str, Any] = jwt.decode(
        access_token,
        jwt.PyJWK(matching[0]),
        algorithms=[live_server.settings.signing_alg],
        audience=live_server.settings.access_token_audience,
        issuer=live_server.url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    return claims


async def refresh_families(database_url: str, client_id: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.refresh_token_families WHERE client_id = $1", client_id
        )
    finally:
        await connection.close()
    return count


async def test_implicit_grant_hands_the_token_to_the_page_and_never_to_a_server(
    live_server: LiveServer, spa: Spa, browser: Browser, person: User, database_url: str
) -> None:
    client = await register(live_server, spa, ["implicit"])
    page = browser.page
    state = new_state()

    login = await page.goto(authorization_url(live_server, client.client_id, spa.redirect_uri, state))
    assert login is not None
    assert login.status == 200
    assert urlsplit(login.url).path == "/login"
    await sign_in(page, person.username, PASSWORD)
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    await expect(page.locator("li[data-scope]")).to_have_count(1)
    await expect(page.locator('li[data-scope="photos:read"]')).to_be_visible()

    async with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/consent"
    ) as answered:
        await page.get_by_role("button", name="Allow").click()
    redirect = await answered.value
    assert redirect.status == 303
    await assert_redirect_not_cached_nor_referred(redirect)
    target = location(redirect)
    assert target.startswith(f"{spa.redirect_uri}#")  # the fragment, never the query (§4.2.2)
    await page.wait_for_url(lambda u: u.startswith(f"{spa.redirect_uri}#"))

    got = await seen_by_script(page, spa)
    assert set(got) == TOKEN_PARAMS  # and so no refresh_token: never in the implicit grant
    assert "refresh_token" not in got
    assert got["token_type"] == "Bearer"
    assert got["expires_in"] == str(live_server.settings.access_token_ttl)
    assert got["scope"] == "photos:read"
    assert got["state"] == state  # unchanged, spaces, '&' and '+' included
    assert got["iss"] == live_server.url  # RFC 9207
    assert dict(parse_qsl(urlsplit(target).fragment)) == got  # the page read what the server sent

    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", f"{live_server.url}/login", 200),
        ("POST", f"{live_server.url}/login", 303),
        ("GET", f"{live_server.url}/oauth2/authorize", 200),
        ("POST", f"{live_server.url}/consent", 303),
        ("GET", spa.redirect_uri, 200),
    ]
    # The SPA's server served the callback page, asked for with no query at all, and never saw the token.
    [callback] = spa.callbacks()
    assert callback.path_qs == "/app/callback"
    assert "referer" not in callback.headers
    spa.assert_never_received(got["access_token"])

    claims = await verified_claims(live_server, got["access_token"])
    assert claims["sub"] == person.subject  # the person who signed in in the browser
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "photos:read"
    assert claims["exp"] - claims["iat"] == live_server.settings.access_token_ttl
    assert abs(claims["auth_time"] - time.time()) < 60  # the sign-in a moment ago
    assert await refresh_families(database_url, client.client_id) == 0  # nothing to refresh it with

    # The implicit grant asks again every time (issue 11: RFC 6749 §10.2, RFC 8252 §8.6): the same
    # request shows the consent page, signed in already, and the token comes after Allow.
    browser.documents.clear()
    again_state = new_state()
    again = await page.goto(authorization_url(live_server, client.client_id, spa.redirect_uri, again_state))
    assert again is not None and again.status == 200
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    async with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/consent"
    ) as answered_again:
        await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(lambda u: u.startswith(f"{spa.redirect_uri}#"))
    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 200),
        ("POST", f"{live_server.url}/consent", 303),
        ("GET", spa.redirect_uri, 200),
    ]
    await assert_redirect_not_cached_nor_referred(await answered_again.value)
    got_again = await seen_by_script(page, spa)
    assert set(got_again) == TOKEN_PARAMS
    assert got_again["state"] == again_state
    assert got_again["access_token"] != got["access_token"]
    again_claims = await verified_claims(live_server, got_again["access_token"])
    assert again_claims["sub"] == person.subject
    assert again_claims["jti"] != claims["jti"]
    assert len(spa.callbacks()) == 2
    assert all(c.path_qs == "/app/callback" for c in spa.callbacks())
    spa.assert_never_received(got_again["access_token"])
    assert await refresh_families(database_url, client.client_id) == 0


async def test_a_client_not_registered_for_implicit_gets_unsupported_response_type(
    live_server: LiveServer, spa: Spa, browser: Browser
) -> None:
    client = await register(live_server, spa, ["authorization_code"])
    page = browser.page
    state = new_state()
    pkce = Pkce.new()
    url = authorization_url(
        live_server,
        client.client_id,
        spa.redirect_uri,
        state,
        code_challenge=pkce.challenge,
        code_challenge_method="S256",
    )

    landed = await page.goto(url)
    assert landed is not None
    # Refused before anyone is asked to sign in, straight back to the client.
    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", spa.redirect_uri, 200),
    ]
    [redirect] = browser.redirects_to(f"{spa.redirect_uri}#")  # in the fragment, as asked with token
    await assert_redirect_not_cached_nor_referred(redirect)

    got = await seen_by_script(page, spa)
    assert set(got) == ERROR_PARAMS
    assert got["error"] == "unsupported_response_type"
    assert got["state"] == state
    assert got["iss"] == live_server.url
    [callback] = spa.callbacks()
    assert callback.path_qs == "/app/callback"


async def test_deny_sends_access_denied_in_the_fragment(
    live_server: LiveServer, spa: Spa, browser: Browser, person: User
) -> None:
    client = await register(live_server, spa, ["implicit"])
    page = browser.page
    state = new_state()
    url = authorization_url(live_server, client.client_id, spa.redirect_uri, state)

    await page.goto(url)
    await sign_in(page, person.username, PASSWORD)
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    async with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/consent"
    ) as answered:
        await page.get_by_role("button", name="Deny").click()
    redirect = await answered.value
    assert redirect.status == 303
    await assert_redirect_not_cached_nor_referred(redirect)
    assert location(redirect).startswith(f"{spa.redirect_uri}#")
    await page.wait_for_url(lambda u: u.startswith(f"{spa.redirect_uri}#"))

    got = await seen_by_script(page, spa)
    assert set(got) == ERROR_PARAMS
    assert got["error"] == "access_denied"
    assert got["state"] == state
    assert got["iss"] == live_server.url
    [callback] = spa.callbacks()
    assert callback.path_qs == "/app/callback"

    # Denying records no consent: asking again shows the consent page again (already signed in).
    again = await page.goto(url)
    assert again is not None
    assert again.status == 200
    assert urlsplit(again.url).path == "/oauth2/authorize"
    await expect(page.locator("#client-name")).to_have_text(CLIENT_NAME)
    assert len(spa.callbacks()) == 1


async def test_implicit_request_without_state_is_refused_in_the_fragment(
    live_server: LiveServer, spa: Spa, browser: Browser
) -> None:
    """Without PKCE, state is the client's only CSRF defence (RFC 9700 §2.1): no token without it."""
    client = await register(live_server, spa, ["implicit"])
    page = browser.page
    await page.goto(authorization_url(live_server, client.client_id, spa.redirect_uri, None))
    assert browser.trail() == [
        ("GET", f"{live_server.url}/oauth2/authorize", 302),
        ("GET", spa.redirect_uri, 200),
    ]
    got = await seen_by_script(page, spa)
    assert set(got) == {"error", "error_description", "iss"}
    assert got["error"] == "invalid_request"
    assert got["iss"] == live_server.url
