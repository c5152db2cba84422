"""The Photo Printer demo (examples/photo_printer) against a real Tessera and a real Photo Warehouse.

Three servers on loopback ports, and an aiohttp client playing the browser: it keeps cookies and
follows every redirect by hand, so each hop of the authorization-code flow is checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp import web
from markupsafe import escape

from auth_server.crypto import hash_password
from examples.photo_printer.app import (
    COOKIE,
    SESSIONS,
    BrowserSession,
    MetadataError,
    PrinterSettings,
    create_app,
)
from resource_server.app import create_app as create_warehouse_app
from resource_server.settings import ResourceSettings
from tests.integration.test_photo_warehouse import png
from tests.support.flow import basic, hidden
from tests.support.servers import PASSWORD, LiveServer, free_port

TITLES = ("Xiamen harbour", 'Gulangyu <sunset> & "sea"')


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


@pytest.fixture
async def warehouse(live_server: LiveServer, database_url: str) -> AsyncIterator[str]:
    """The Photo Warehouse on a real port; its base URL."""
    settings = ResourceSettings(
        issuer=live_server.url,
        database_url=database_url,
        audience=live_server.settings.access_token_audience,
    )
    port = free_port()
    runner = await _serve(create_warehouse_app(settings), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Printer:
    url: str
    app: web.Application
    settings: PrinterSettings
    username: str
    photo_ids: tuple[str, ...]


async def _user_with_photos(live: LiveServer, warehouse: str) -> tuple[str, tuple[str, ...]]:
    """A new user who has uploaded two PNGs, through a first-party password-grant client."""
    user = await live.registry.users.create(f"printer-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    uploader, secret = await live.registry.clients.create(
        name="Warehouse uploader",
        redirect_uris=[],
        grant_types=["password"],
        scope=["photos:write"],
        auth_method="client_secret_basic",
    )
    assert secret
    form = {
        "grant_type": "password",
        "username": user.username,
        "password": PASSWORD,
        "scope": "photos:write",
    }
    ids = []
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{live.url}/oauth2/token", data=form, headers=basic(uploader.client_id, secret)
        ) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["access_token"]
        for seed, title in enumerate(TITLES):
            upload = aiohttp.FormData()
            upload.add_field("title", title)
            upload.add_field("file", io.BytesIO(png(seed)), filename="photo.png", content_type="image/png")
            async with http.post(
                f"{warehouse}/api/photos", data=upload, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 201, await r.text()
                ids.append((await r.json())["id"])
    return user.username, tuple(ids)


@pytest.fixture
async def printer(live_server: LiveServer, warehouse: str) -> AsyncIterator[Printer]:
    """A registered Photo Printer on its own port, and a user with two photos in the warehouse."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client, secret = await live_server.registry.clients.create(
        name="Photo Printer",
        redirect_uris=[f"{url}/callback"],
        grant_types=["authorization_code", "refresh_token"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret
    username, photo_ids = await _user_with_photos(live_server, warehouse)
    settings = PrinterSettings(
        issuer=live_server.url,
        client_id=client.client_id,
        client_secret=secret,
        redirect_uri=f"{url}/callback",
        api_base=warehouse,
        port=port,
    )
    app = create_app(settings)
    runner = await _serve(app, port)
    try:
        yield Printer(url, app, settings, username, photo_ids)
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies of an IP address host (127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    headers: dict[str, str]
    text: str

    @property
    def location(self) -> str:
        """The redirect target, made absolute against this page's URL."""
        return urljoin(self.url, self.headers["Location"])


async def _get(browser: aiohttp.ClientSession, url: str) -> Page:
    async with browser.get(url, allow_redirects=False) as r:
        return Page(url, r.status, dict(r.headers), await r.text())


async def _post(browser: aiohttp.ClientSession, url: str, form: dict[str, str]) -> Page:
    async with browser.post(url, data=form, allow_redirects=False) as r:
        return Page(url, r.status, dict(r.headers), await r.text())


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _through_the_authorization_server(
    browser: aiohttp.ClientSession, live: LiveServer, printer: Printer, *, decision: str
) -> tuple[Page, str]:
    """Home → /connect → sign in → consent; the printer's answer at /callback, and the cookie before."""
    home = await _get(browser, f"{printer.url}/")
    assert home.status == 200 and "<title>Photo Printer</title>" in home.text
    assert "Import photos from Photo Warehouse" in home.text and 'href="/connect"' in home.text

    connect = await _get(browser, f"{printer.url}/connect")
    assert connect.status == 302
    assert connect.location.startswith(f"{live.url}/oauth2/authorize?")
    params = _query(connect.location)
    assert params["response_type"] == "code" and params["client_id"] == printer.settings.client_id
    assert params["redirect_uri"] == f"{printer.url}/callback" and params["scope"] == "photos:read"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32
    cookie = connect.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    to_login = await _get(browser, connect.location)
    assert to_login.status == 302 and urlsplit(to_login.location).path == "/login"
    login_page = await _get(browser, to_login.location)
    assert login_page.status == 200
    signed_in = await _post(
        browser,
        f"{live.url}/login",
        {
            "username": printer.username,
            "password": PASSWORD,
            "csrf_token": hidden(login_page.text, "csrf_token"),
            "return_to": hidden(login_page.text, "return_to"),
        },
    )
    assert signed_in.status == 303, signed_in.text
    consent_page = await _get(browser, signed_in.location)
    assert consent_page.status == 200 and "Photo Printer" in consent_page.text
    decided = await _post(
        browser,
        f"{live.url}/consent",
        {
            "csrf_token": hidden(consent_page.text, "csrf_token"),
            "request_id": hidden(consent_page.text, "request_id"),
            "consent": decision,
        },
    )
    assert decided.status == 303, decided.text
    assert decided.location.startswith(f"{printer.url}/callback?")
    returned = _query(decided.location)
    assert returned["state"] == params["state"] and returned["iss"] == live.url
    before = _cookie(browser)
    assert before is not None
    return await _get(browser, decided.location), before


async def _connect(browser: aiohttp.ClientSession, live: LiveServer, printer: Printer) -> Page:
    """The whole flow, allowed; returns the /photos page."""
    callback, before = await _through_the_authorization_server(browser, live, printer, decision="allow")
    assert callback.status == 303, callback.text
    # a new session id once connected: an id planted before sign-in is worth nothing after it
    assert callback.headers["Set-Cookie"].startswith(f"{COOKIE}=") and _cookie(browser) != before
    assert callback.location == f"{printer.url}/photos"
    photos = await _get(browser, callback.location)
    assert photos.status == 200, photos.text
    return photos


def _cookie(browser: aiohttp.ClientSession) -> str | None:
    return next((c.value for c in browser.cookie_jar if c.key == COOKIE), None)


def _session(browser: aiohttp.ClientSession, printer: Printer) -> BrowserSession:
    session = printer.app[SESSIONS].get(_cookie(browser))
    assert session is not None
    return session


async def test_connect_list_thumbnails_and_print(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    photos = await _connect(browser, live_server, printer)
    for photo_id, title in zip(printer.photo_ids, TITLES, strict=True):
        assert escape(title) in photos.text
        assert f'<img src="/photos/{photo_id}/image" width="160"' in photos.text
        assert f'action="/photos/{photo_id}/print"' in photos.text
    assert "<sunset>" not in photos.text  # titles are escaped
    assert photos.headers["Referrer-Policy"] == "no-referrer"

    # tokens stay on the server, never in a cookie or a page
    session = _session(browser, printer)
    assert session.tokens is not None and session.tokens.refresh_token is not None
    for cookie in browser.cookie_jar:
        assert session.tokens.access_token not in cookie.value
    assert session.tokens.access_token not in photos.text

    for seed, photo_id in enumerate(printer.photo_ids):
        async with browser.get(f"{printer.url}/photos/{photo_id}/image") as image:
            assert image.status == 200 and image.content_type == "image/png"
            assert await image.read() == png(seed)
    async with browser.get(f"{printer.url}/photos/{uuid.uuid4()}/image") as missing:
        assert missing.status == 404

    csrf = hidden(photos.text, "csrf_token")
    printed = await _post(browser, f"{printer.url}/photos/{printer.photo_ids[1]}/print", {"csrf_token": csrf})
    assert printed.status == 200 and f"Sent '{escape(TITLES[1])}' to the printer" in printed.text
    forged = await _post(browser, f"{printer.url}/photos/{printer.photo_ids[0]}/print", {"csrf_token": "x"})
    assert forged.status == 400

    home = await _get(browser, f"{printer.url}/")
    assert 'href="/photos"' in home.text and "Import photos from Photo Warehouse" not in home.text

    # disconnecting revokes the refresh token at Tessera, and with it the access token (RFC 7009 §2.1)
    refresh_token, access_token = session.tokens.refresh_token, session.tokens.access_token
    left = await _post(browser, f"{printer.url}/disconnect", {"csrf_token": hidden(home.text, "csrf_token")})
    assert left.status == 303 and session.tokens is None
    async with aiohttp.ClientSession() as http:
        settings = printer.settings
        async with http.post(
            f"{live_server.url}/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers=basic(settings.client_id, settings.client_secret),
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
    claims = jwt.decode(access_token, options={"verify_signature": False})
    assert await live_server.registry.revoked_tokens.is_revoked(claims["jti"], claims["grant_id"])
    assert (await _get(browser, f"{printer.url}/photos")).status == 303


async def test_denying_consent_imports_nothing(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    page, _ = await _through_the_authorization_server(browser, live_server, printer, decision="deny")
    assert page.status == 200
    assert "You chose not to share your photos. Nothing was imported." in page.text
    assert 'href="/connect"' in page.text
    assert _session(browser, printer).tokens is None
    photos = await _get(browser, f"{printer.url}/photos")
    assert photos.status == 303 and photos.location == f"{printer.url}/"


async def test_a_forged_state_is_refused(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    # no session at all
    page = await _get(browser, f"{printer.url}/callback?code=abc&state=forged&iss={live_server.url}")
    assert page.status == 400 and "This sign-in link is not valid or has expired" in page.text
    # a session with a pending sign-in, but another state
    connect = await _get(browser, f"{printer.url}/connect")
    state = _query(connect.location)["state"]
    page = await _get(browser, f"{printer.url}/callback?code=abc&state=forged&iss={live_server.url}")
    assert page.status == 400 and "This sign-in link is not valid or has expired" in page.text
    # the right state, but from another issuer (RFC 9207): refused, and the state is spent
    page = await _get(browser, f"{printer.url}/callback?code=abc&state={state}&iss=https://evil.example")
    assert page.status == 400
    page = await _get(browser, f"{printer.url}/callback?code=abc&state={state}&iss={live_server.url}")
    assert page.status == 400 and "This sign-in link is not valid or has expired" in page.text
    assert _session(browser, printer).tokens is None


async def test_an_expired_access_token_is_refreshed(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    await _connect(browser, live_server, printer)
    session = _session(browser, printer)
    for expires_at in (0.0, None):  # past its stored expiry; then a 401 from the warehouse
        assert session.tokens is not None
        old = session.tokens
        session.tokens = dataclasses.replace(old, access_token="expired", expires_at=expires_at)
        photos = await _get(browser, f"{printer.url}/photos")
        assert photos.status == 200 and escape(TITLES[0]) in photos.text
        assert session.tokens is not None and session.tokens.access_token != "expired"
        assert session.tokens.refresh_token != old.refresh_token  # rotated, and the new one stored

    # thumbnails load in parallel: a single refresh serves both (a second would revoke the family)
    assert session.tokens is not None
    session.tokens = dataclasses.replace(session.tokens, access_token="expired", expires_at=0.0)

    async def image(photo_id: str) -> int:
        async with browser.get(f"{printer.url}/photos/{photo_id}/image") as r:
            await r.read()
            return r.status

    assert await asyncio.gather(*(image(i) for i in printer.photo_ids)) == [200, 200]
    assert (await _get(browser, f"{printer.url}/photos")).status == 200

    # a refresh token the server no longer accepts: the tokens are dropped
    assert session.tokens is not None
    session.tokens = dataclasses.replace(session.tokens, access_token="expired", refresh_token="revoked")
    page = await _get(browser, f"{printer.url}/photos")
    assert page.status == 200 and "Please connect again" in page.text
    assert session.tokens is None


async def test_metadata_of_another_issuer_is_refused(live_server: LiveServer) -> None:
    """RFC 8414 §3.3: a metadata document naming another issuer stops the printer from starting."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{live_server.url}/.well-known/oauth-authorization-server") as r,
    ):
        document = await r.json()
    impostor = web.Application()

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(document)  # the real issuer's document, served from elsewhere

    impostor.router.add_get("/.well-known/oauth-authorization-server", metadata)
    port = free_port()
    impostor_runner = await _serve(impostor, port)
    settings = PrinterSettings(
        issuer=f"http://127.0.0.1:{port}",
        client_id="x",
        client_secret="y",
        redirect_uri="http://127.0.0.1:9/callback",
    )
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(MetadataError, match="issuer"):
            await runner.setup()
    finally:
        await runner.cleanup()
        await impostor_runner.cleanup()


def test_settings_from_env() -> None:
    settings = PrinterSettings.from_env(
        {"PRINTER_CLIENT_ID": "printer", "PRINTER_CLIENT_SECRET": "s3cret: yes", "PRINTER_PORT": "9100"}
    )
    assert settings.issuer == "http://localhost:8000" and settings.api_base == "http://localhost:8001"
    assert settings.redirect_uri == "http://localhost:9000/callback" and settings.port == 9100
    assert settings.scope == "photos:read" and settings.host == "127.0.0.1"
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValueError, match="PRINTER_CLIENT_ID"):
        PrinterSettings.from_env({})
