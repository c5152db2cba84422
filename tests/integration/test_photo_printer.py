"""The Photo Printer demo (examples/photo_printer) against a real Tessera and a real Photo Warehouse.

Three servers on loopback ports, and an aiohttp client playing the browser: it keeps cookies and
follows every redirect by hand, so each hop of "Sign in with Photo Warehouse" (OpenID Connect's
code flow) is checked, and so are sign-out at both sites (RP-initiated logout) and sign-out at
Tessera reaching the printer (back-channel logout).

The printer's checks of ID tokens and logout tokens are tested one by one against a stand-in
provider whose keys the test holds, so it can sign tokens that are wrong in exactly one way.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from markupsafe import escape

from auth_server.crypto import hash_password
from examples.photo_printer.app import (
    COOKIE,
    SESSIONS,
    BrowserSession,
    MetadataError,
    PrinterSettings,
    SignedInUser,
    create_app,
)
from examples.photo_printer.oidc import (
    BACKCHANNEL_EVENT,
    KeySet,
    ProviderMetadata,
    TokenInvalid,
    token_hash,
    verify_id_token,
)
from resource_server.app import create_app as create_warehouse_app
from resource_server.settings import ResourceSettings
from tests.integration.test_photo_warehouse import png
from tests.support.flow import basic, hidden
from tests.support.servers import PASSWORD, LiveServer, free_port

TITLES = ("Xiamen harbour", 'Gulangyu <sunset> & "sea"')
NICKNAME = "小美"
SCOPE = "openid profile email offline_access photos:read"
# an avatar as the demo gives one: a data: URL (an SVG here, so a screenshot shows a face, not a dot)
AVATAR = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><circle cx="32" cy="32" r="32"'
    b' fill="#e8789a"/><circle cx="24" cy="27" r="4" fill="#fff"/><circle cx="40" cy="27" r="4"'
    b' fill="#fff"/><path d="M21 41q11 10 22 0" stroke="#fff" stroke-width="4" fill="none"/></svg>'
).decode("ascii")
LOGOUT_WAIT = 15.0  # seconds a back-channel logout may take to reach the printer


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


@asynccontextmanager
async def running_warehouse(live: LiveServer, database_url: str) -> AsyncIterator[str]:
    """The Photo Warehouse on a real port; its base URL."""
    settings = ResourceSettings(
        issuer=live.url, database_url=database_url, audience=live.settings.access_token_audience
    )
    port = free_port()
    runner = await _serve(create_warehouse_app(settings), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def warehouse(live_server: LiveServer, database_url: str) -> AsyncIterator[str]:
    async with running_warehouse(live_server, database_url) as url:
        yield url


@dataclass(frozen=True)
class Printer:
    url: str
    app: web.Application
    settings: PrinterSettings
    username: str
    photo_ids: tuple[str, ...]


async def _user_with_photos(live: LiveServer, warehouse: str) -> tuple[str, tuple[str, ...]]:
    """A new user with a nickname and an avatar, who has uploaded two PNGs through a first-party
    password-grant client."""
    user = await live.registry.users.create(f"printer-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    await live.registry.users.set_profile(user.user_id, {"nickname": NICKNAME, "picture": AVATAR})
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


@asynccontextmanager
async def running_printer(live: LiveServer, warehouse: str) -> AsyncIterator[Printer]:
    """The Photo Printer on its own port, registered as `tessera dev` registers it (the OpenID scopes,
    its home page as post-logout redirect URI, its back-channel logout URI), and a user with photos."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client, secret = await live.registry.clients.create(
        name="Photo Printer",
        redirect_uris=[f"{url}/callback"],
        grant_types=["authorization_code", "refresh_token"],
        scope=SCOPE.split(),
        auth_method="client_secret_basic",
        openid={
            "post_logout_redirect_uris": [f"{url}/"],
            "backchannel_logout_uri": f"{url}/backchannel-logout",
            "backchannel_logout_session_required": True,
        },
    )
    assert secret
    username, photo_ids = await _user_with_photos(live, warehouse)
    settings = PrinterSettings(
        issuer=live.url,
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
async def printer(live_server: LiveServer, warehouse: str) -> AsyncIterator[Printer]:
    async with running_printer(live_server, warehouse) as running:
        yield running


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
    assert "Sign in with Photo Warehouse" in home.text and 'href="/connect"' in home.text

    connect = await _get(browser, f"{printer.url}/connect")
    assert connect.status == 302
    assert connect.location.startswith(f"{live.url}/oauth2/authorize?")
    params = _query(connect.location)
    assert params["response_type"] == "code" and params["client_id"] == printer.settings.client_id
    assert params["redirect_uri"] == f"{printer.url}/callback" and params["scope"] == SCOPE
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
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


async def _sign_in(browser: aiohttp.ClientSession, live: LiveServer, printer: Printer) -> Page:
    """The whole flow, allowed; returns the home page that greets the user."""
    callback, before = await _through_the_authorization_server(browser, live, printer, decision="allow")
    assert callback.status == 303, callback.text
    # a new session id once signed in: an id planted before sign-in is worth nothing after it
    assert callback.headers["Set-Cookie"].startswith(f"{COOKIE}=") and _cookie(browser) != before
    assert callback.location == f"{printer.url}/"
    home = await _get(browser, callback.location)
    assert home.status == 200, home.text
    return home


def _cookie(browser: aiohttp.ClientSession) -> str | None:
    return next((c.value for c in browser.cookie_jar if c.key == COOKIE), None)


def _session(browser: aiohttp.ClientSession, printer: Printer) -> BrowserSession:
    session = printer.app[SESSIONS].get(_cookie(browser))
    assert session is not None
    return session


def _signed_in_user(browser: aiohttp.ClientSession, printer: Printer) -> SignedInUser:
    user = _session(browser, printer).user
    assert user is not None
    return user


async def _wait_until(condition: Callable[[], Awaitable[bool]], seconds: float = LOGOUT_WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.1)


async def test_sign_in_greets_the_user_by_nickname_with_her_avatar(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    home = await _sign_in(browser, live_server, printer)
    assert f"Hello, {NICKNAME}" in home.text
    assert f'src="{AVATAR}"' in home.text
    assert "Sign in with Photo Warehouse" not in home.text and 'action="/logout"' in home.text
    policy = home.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https:;" in policy and "script-src" not in policy
    # the sign-out form redirects to Tessera's end_session_endpoint: the browser checks that too
    assert f"form-action 'self' {live_server.url};" in policy

    # what the ID token said, verified: the user's sub at Tessera and the session's sid
    user = _signed_in_user(browser, printer)
    person = await live_server.registry.users.by_username(printer.username)
    assert person is not None and user.sub == person.subject
    assert user.sid and user.display_name == NICKNAME and user.picture == AVATAR
    claims = jwt.decode(user.id_token, options={"verify_signature": False})
    assert claims["aud"] == printer.settings.client_id and claims["sid"] == user.sid
    assert jwt.get_unverified_header(user.id_token)["alg"] == "RS256"
    for cookie in browser.cookie_jar:
        assert user.id_token not in cookie.value
    assert user.id_token not in home.text


async def test_sign_in_list_thumbnails_and_print(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    home = await _sign_in(browser, live_server, printer)
    assert 'href="/photos"' in home.text
    photos = await _get(browser, f"{printer.url}/photos")
    assert photos.status == 200, photos.text
    for photo_id, title in zip(printer.photo_ids, TITLES, strict=True):
        assert escape(title) in photos.text
        assert f'<img src="/photos/{photo_id}/image" width="160"' in photos.text
        assert f'action="/photos/{photo_id}/print"' in photos.text
    assert "<sunset>" not in photos.text  # titles are escaped
    assert NICKNAME in photos.text  # the header says who is signed in
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


async def test_sign_out_ends_both_sessions_and_revokes_the_tokens(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    home = await _sign_in(browser, live_server, printer)
    session = _session(browser, printer)
    assert session.tokens is not None and session.user is not None
    refresh_token, access_token = session.tokens.refresh_token, session.tokens.access_token
    id_token, signed_in_cookie = session.user.id_token, _cookie(browser)

    forged = await _post(browser, f"{printer.url}/logout", {"csrf_token": "forged"})
    assert forged.status == 400 and _session(browser, printer).user is not None

    left = await _post(browser, f"{printer.url}/logout", {"csrf_token": hidden(home.text, "csrf_token")})
    assert left.status == 303
    # RP-Initiated Logout §2: to the provider's end_session_endpoint, with a state of our own
    assert left.location.startswith(f"{live_server.url}/")
    params = _query(left.location)
    assert params["id_token_hint"] == id_token and params["client_id"] == printer.settings.client_id
    assert params["post_logout_redirect_uri"] == f"{printer.url}/" and len(params["state"]) >= 32
    # the printer's session is over at once; the old cookie is worth nothing
    assert printer.app[SESSIONS].get(signed_in_cookie) is None and _cookie(browser) != signed_in_cookie

    # the refresh token is revoked at Tessera, and with it the access token (RFC 7009 §2.1)
    async with aiohttp.ClientSession() as http:
        settings = printer.settings
        async with http.post(
            f"{live_server.url}/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token or ""},
            headers=basic(settings.client_id, settings.client_secret),
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
    claims = jwt.decode(access_token, options={"verify_signature": False})
    assert await live_server.registry.revoked_tokens.is_revoked(claims["jti"], claims["grant_id"])

    # Tessera signs her out (a valid hint: no question asked) and sends her back with the state
    ended = await _get(browser, left.location)
    assert ended.status in (302, 303), ended.text
    assert ended.location == f"{printer.url}/?state={quote(params['state'], safe='')}"
    back = await _get(browser, ended.location)
    assert back.status == 200 and "You have signed out of Photo Printer and Photo Warehouse" in back.text
    assert "Sign in with Photo Warehouse" in back.text and NICKNAME not in back.text
    again = await _get(browser, ended.location)  # the state is good once
    assert "You have signed out" not in again.text
    assert (await _get(browser, f"{printer.url}/photos")).status == 303

    login = await _get(browser, f"{live_server.url}/login")
    assert login.status == 200 and 'name="password"' in login.text  # signed out at Tessera too


async def test_a_wrong_state_on_return_from_sign_out_says_nothing(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    home = await _sign_in(browser, live_server, printer)
    left = await _post(browser, f"{printer.url}/logout", {"csrf_token": hidden(home.text, "csrf_token")})
    assert left.status == 303
    back = await _get(browser, f"{printer.url}/?state=forged")
    assert back.status == 200 and "You have signed out" not in back.text


async def test_signing_out_at_tessera_signs_the_user_out_of_the_printer(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    """Back-Channel Logout: Tessera's own sign-out tells the printer, which ends her session."""
    await _sign_in(browser, live_server, printer)
    user = _signed_in_user(browser, printer)
    signed_in = await _get(browser, f"{live_server.url}/login")  # "You are signed in as …"
    assert signed_in.status == 200 and 'action="/logout"' in signed_in.text
    out = await _post(
        browser, f"{live_server.url}/logout", {"csrf_token": hidden(signed_in.text, "csrf_token")}
    )
    assert out.status == 303, out.text

    async def printer_signed_out() -> bool:
        return "Sign in with Photo Warehouse" in (await _get(browser, f"{printer.url}/")).text

    await _wait_until(printer_signed_out)
    assert printer.app[SESSIONS].get(_cookie(browser)) is None
    assert all(s.user is None or s.user.sid != user.sid for s in printer.app[SESSIONS]._sessions.values())


async def test_denying_consent_signs_nobody_in(
    browser: aiohttp.ClientSession, live_server: LiveServer, printer: Printer
) -> None:
    page, _ = await _through_the_authorization_server(browser, live_server, printer, decision="deny")
    assert page.status == 200
    assert "You chose not to sign in with Photo Warehouse. Nothing was imported." in page.text
    assert 'href="/connect"' in page.text
    session = _session(browser, printer)
    assert session.tokens is None and session.user is None
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
    await _sign_in(browser, live_server, printer)
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


def test_settings_from_env() -> None:
    settings = PrinterSettings.from_env(
        {"PRINTER_CLIENT_ID": "printer", "PRINTER_CLIENT_SECRET": "s3cret: yes", "PRINTER_PORT": "9100"}
    )
    assert settings.issuer == "http://localhost:8000" and settings.api_base == "http://localhost:8001"
    assert settings.redirect_uri == "http://localhost:9000/callback" and settings.port == 9100
    assert settings.scope == SCOPE and settings.host == "127.0.0.1"
    assert settings.post_logout_redirect_uri == "http://localhost:9000/"
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValueError, match="PRINTER_CLIENT_ID"):
        PrinterSettings.from_env({})
    with pytest.raises(ValueError, match="openid"):
        PrinterSettings.from_env(
            {"PRINTER_CLIENT_ID": "p", "PRINTER_CLIENT_SECRET": "s", "PRINTER_SCOPE": "x"}
        )


# --- the relying party's checks, against a stand-in provider whose keys the test holds --------------

CLIENT_ID = "printer-client"


@dataclass
class StandIn:
    """A provider that serves only a discovery document and a JWKS, and signs what a test asks."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str
    jwks: list[dict[str, Any]]
    document: dict[str, Any]

    def sign(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        key: Any = None,
        alg: str = "RS256",
    ) -> str:
        return jwt.encode(
            claims, key or self.key, algorithm=alg, headers={"kid": self.kid, **(headers or {})}
        )

    def sign_logout(self, claims: dict[str, Any], **options: Any) -> str:
        """A logout token as Back-Channel Logout §2.4 recommends: explicitly typed."""
        headers = {"typ": "logout+jwt", **options.pop("headers", {})}
        return self.sign(claims, headers=headers, **options)

    def id_token(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "u-1", "aud": CLIENT_ID, "iat": now, "exp": now + 300}
        return {**claims, "nonce": "n-1", "sid": "s-1", **changes}

    def logout_token(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
        return {**claims, "sub": "u-1", "sid": "s-1", "events": {BACKCHANNEL_EVENT: {}}, **changes}


def _public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider = StandIn(url, key, "k1", [_public_jwk(key, "k1")], {})
    provider.document = {
        "issuer": url,
        "authorization_endpoint": f"{url}/authorize",
        "token_endpoint": f"{url}/token",
        "jwks_uri": f"{url}/jwks",
        "userinfo_endpoint": f"{url}/userinfo",
        "end_session_endpoint": f"{url}/end-session",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "subject_types_supported": ["public"],
    }
    app = web.Application()

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(provider.document)

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": provider.jwks})

    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    runner = await _serve(app, port)
    try:
        yield provider
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _printer_of(provider: StandIn) -> AsyncIterator[tuple[str, web.Application]]:
    port = free_port()
    settings = PrinterSettings(
        issuer=provider.url,
        client_id=CLIENT_ID,
        client_secret="s",
        redirect_uri=f"http://127.0.0.1:{port}/callback",
        port=port,
    )
    app = create_app(settings)
    runner = await _serve(app, port)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


async def _verify(provider: StandIn, token: str, *, access_token: str = "at") -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        metadata = ProviderMetadata.parse(provider.document, provider.url)
        keys = KeySet(http, metadata.jwks_uri)
        return await verify_id_token(
            token, keys=keys, metadata=metadata, client_id=CLIENT_ID, nonce="n-1", access_token=access_token
        )


async def test_a_good_id_token_passes(stand_in: StandIn) -> None:
    token = stand_in.sign(stand_in.id_token(at_hash=token_hash("at", "RS256"), azp=CLIENT_ID))
    claims = await _verify(stand_in, token)
    assert claims["sub"] == "u-1" and claims["sid"] == "s-1"
    # several audiences with this client as azp; and a key the printer has not seen yet (a rotation)
    fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stand_in.jwks.append(_public_jwk(fresh, "k2"))
    multi = stand_in.id_token(aud=[CLIENT_ID, "another"], azp=CLIENT_ID)
    assert (await _verify(stand_in, stand_in.sign(multi, key=fresh, headers={"kid": "k2"})))["sub"] == "u-1"


@dataclass(frozen=True)
class FromNow:
    """A time claim this many seconds from when the test runs."""

    seconds: int


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("another issuer", {"iss": "https://evil.example"}),
        ("another audience", {"aud": "another-client"}),
        ("several audiences, no azp", {"aud": [CLIENT_ID, "another-client"]}),
        ("azp of another client", {"azp": "another-client"}),
        ("expired", {"exp": FromNow(-120), "iat": FromNow(-400)}),
        ("issued in the future", {"iat": FromNow(600)}),
        ("another nonce", {"nonce": "n-2"}),
        ("no nonce", {"nonce": None}),
        ("an at_hash of another access token", {"at_hash": token_hash("other", "RS256")}),
        ("no sub", {"sub": None}),
    ],
)
async def test_an_id_token_wrong_in_one_way_is_refused(
    stand_in: StandIn, why: str, changes: dict[str, Any]
) -> None:
    # times from when the test runs, not from when it was collected (the suite is longer than 600 s)
    now = int(time.time())
    changes = {k: now + v.seconds if isinstance(v, FromNow) else v for k, v in changes.items()}
    claims = {k: v for k, v in stand_in.id_token(**changes).items() if v is not None}
    with pytest.raises(TokenInvalid):
        await _verify(stand_in, stand_in.sign(claims))


def _with_crit(provider: StandIn, claims: dict[str, Any]) -> str:
    """A well-signed token with a critical header parameter (PyJWT will not encode one)."""

    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    header = {"alg": "RS256", "kid": provider.kid, "crit": ["urn:example:must-understand"]}
    signing_input = part(header) + b"." + part(claims)
    rs256 = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    signature = base64.urlsafe_b64encode(rs256.sign(signing_input, provider.key)).rstrip(b"=")
    return (signing_input + b"." + signature).decode("ascii")


async def test_an_id_token_signed_otherwise_is_refused(stand_in: StandIn) -> None:
    claims = stand_in.id_token()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [
        stand_in.sign(claims, key=stranger),  # the right kid, another key
        stand_in.sign(claims, headers={"kid": "unknown"}),  # a key the JWKS does not have
        jwt.encode(
            claims,
            "the client secret, used as an HMAC key, 32+ bytes long",
            algorithm="HS256",
            headers={"kid": "k1"},
        ),
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        stand_in.sign(claims, key=ec.generate_private_key(ec.SECP256R1()), alg="ES256"),  # kid k1 is RSA
        _with_crit(stand_in, claims),
        "not a jwt",
    ]
    for token in forged:
        with pytest.raises(TokenInvalid):
            await _verify(stand_in, token)


async def test_discovery_of_another_issuer_is_refused(stand_in: StandIn) -> None:
    """Discovery §4.3: a document naming another issuer stops the printer from starting."""
    stand_in.document["issuer"] = "https://auth.example"
    with pytest.raises(MetadataError, match="issuer"):
        async with _printer_of(stand_in):
            pass


async def test_discovery_without_an_allowed_id_token_algorithm_is_refused(stand_in: StandIn) -> None:
    stand_in.document["id_token_signing_alg_values_supported"] = ["HS256", "none"]
    with pytest.raises(MetadataError, match="signs ID tokens with none of"):
        async with _printer_of(stand_in):
            pass


def _signed_in_session(app: web.Application, *, sub: str, sid: str) -> BrowserSession:
    session = app[SESSIONS].create()
    session.user = SignedInUser(sub=sub, sid=sid, display_name="x", picture=None, id_token="t")
    return session


async def _deliver(printer_url: str, form: Any) -> tuple[int, dict[str, Any] | None, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{printer_url}/backchannel-logout", data=form) as r,
    ):
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body, r.headers.get("Cache-Control", "")


async def test_a_logout_token_ends_the_sessions_it_names(stand_in: StandIn) -> None:
    async with _printer_of(stand_in) as (url, app):
        sessions = app[SESSIONS]
        first = _signed_in_session(app, sub="u-1", sid="s-1")
        other_device = _signed_in_session(app, sub="u-1", sid="s-2")
        someone_else = _signed_in_session(app, sub="u-2", sid="s-3")

        token = stand_in.sign_logout(stand_in.logout_token())
        status, _, cache = await _deliver(url, {"logout_token": token})
        assert status == 200 and cache == "no-store"
        assert sessions.get(first.session_id) is None  # only the session with that sid
        assert sessions.get(other_device.session_id) is other_device

        # sub alone: every session of that user
        claims = {k: v for k, v in stand_in.logout_token().items() if k != "sid"}
        token = stand_in.sign_logout(claims, headers={"typ": None})  # typ is optional
        assert (await _deliver(url, {"logout_token": token}))[0] == 200
        assert sessions.get(other_device.session_id) is None
        assert sessions.get(someone_else.session_id) is someone_else

        # a logout for nobody signed in here is fine too
        token = stand_in.sign_logout(stand_in.logout_token(sub="u-9", sid="s-9"))
        assert (await _deliver(url, {"logout_token": token}))[0] == 200


@pytest.mark.parametrize(
    ("why", "changes", "headers"),
    [
        ("another issuer", {"iss": "https://evil.example"}, {}),
        ("another audience", {"aud": "another-client"}, {}),
        ("expired", {"exp": FromNow(-120), "iat": FromNow(-400)}, {}),
        ("no jti", {"jti": None}, {}),
        ("no events", {"events": None}, {}),
        ("another event", {"events": {"http://schemas.openid.net/event/other": {}}}, {}),
        ("a nonce", {"nonce": "n-1"}, {}),
        ("neither sub nor sid", {"sub": None, "sid": None}, {}),
        ("an ID token's typ", {}, {"typ": "JWT"}),
    ],
)
async def test_a_logout_token_wrong_in_one_way_is_refused(
    stand_in: StandIn, why: str, changes: dict[str, Any], headers: dict[str, Any]
) -> None:
    now = int(time.time())
    changes = {k: now + v.seconds if isinstance(v, FromNow) else v for k, v in changes.items()}
    async with _printer_of(stand_in) as (url, app):
        session = _signed_in_session(app, sub="u-1", sid="s-1")
        claims = {k: v for k, v in stand_in.logout_token(**changes).items() if v is not None}
        status, body, cache = await _deliver(
            url, {"logout_token": stand_in.sign_logout(claims, headers=headers)}
        )
        assert status == 400 and body is not None and body["error"] == "invalid_request", why
        assert cache == "no-store"
        assert app[SESSIONS].get(session.session_id) is session


async def test_a_logout_request_without_one_good_token_is_refused(stand_in: StandIn) -> None:
    async with _printer_of(stand_in) as (url, _):
        token = stand_in.sign_logout(stand_in.logout_token())
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        an_id_token = stand_in.sign(stand_in.id_token())
        for form in (
            {},
            {"logout_token": ""},
            [("logout_token", token), ("logout_token", token)],
            {"logout_token": stand_in.sign_logout(stand_in.logout_token(), key=stranger)},
            {"logout_token": an_id_token},
        ):
            status, body, _ = await _deliver(url, form)
            assert status == 400 and body is not None, form
        status, _, _ = await _deliver(
            url, aiohttp.FormData({"logout_token": token}, default_to_multipart=True)
        )
        assert status == 400
