"""The login and consent pages: CSRF, session handling, cookies, and what they show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import authorize_params, hidden, query_of, sign_in
from tests.support.servers import PASSWORD, ClientFactory, make_settings


def _session_cookie(http: TestClient) -> str | None:
    for cookie in http.session.cookie_jar:
        if cookie.key.endswith("tessera_session"):
            return cookie.value
    return None


async def test_login_replaces_the_session_id(http: TestClient, user: User) -> None:
    await http.get("/login")
    assert _session_cookie(http) is None  # the login page itself creates no session (issue 11)
    assert await sign_in(http, user.username, PASSWORD) == 303
    before = _session_cookie(http)
    assert before
    assert await sign_in(http, user.username, PASSWORD) == 303
    after = _session_cookie(http)
    assert after and after != before
    page = await (await http.get("/login")).text()
    assert "signed in as" in page and user.username in page


async def test_cookie_flags_in_development(http: TestClient, user: User) -> None:
    cookie = (await http.get("/login")).headers["Set-Cookie"]
    assert cookie.startswith("tessera_login=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # only for http://localhost issuers
    page = await (await http.get("/login")).text()
    response = await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": hidden(page, "csrf_token")},
        allow_redirects=False,
    )
    cookie = response.cookies["tessera_session"].OutputString()
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie


async def test_cookies_are_secure_for_https_issuers(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    database_url: str,
    settings: Settings,
    redis_prefix: str,
    user: User,
) -> None:
    https = make_settings(database_url, settings.redis_url or "", redis_prefix, issuer="https://auth.example")
    http = await aiohttp_client(create_app(https))
    page = await http.get("/login")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("__Host-tessera_login=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # the test client keeps no Secure cookie over http: send it back by hand, as a browser would
    response = await http.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": hidden(await page.text(), "csrf_token"),
        },
        headers={"Cookie": f"__Host-tessera_login={page.cookies['__Host-tessera_login'].value}"},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = response.cookies["__Host-tessera_session"].OutputString()
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_login_without_the_csrf_token_is_refused(http: TestClient, user: User) -> None:
    await http.get("/login")
    response = await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": "forged"},
        allow_redirects=False,
    )
    assert response.status == 400
    assert "session expired" in await response.text()
    assert "signed in as" not in await (await http.get("/login")).text()


async def test_wrong_password_and_unknown_user_look_the_same(http: TestClient, user: User) -> None:
    page = await (await http.get("/login")).text()
    wrong = await http.post(
        "/login",
        data={"username": user.username, "password": "nope-nope", "csrf_token": hidden(page, "csrf_token")},
    )
    page = await wrong.text()
    unknown = await http.post(
        "/login",
        data={"username": "ghost-user", "password": "nope-nope", "csrf_token": hidden(page, "csrf_token")},
    )
    assert wrong.status == unknown.status == 400
    assert "Invalid username or password." in page
    assert "Invalid username or password." in await unknown.text()


async def test_return_to_cannot_leave_the_server(http: TestClient, user: User) -> None:
    page = await (await http.get("/login", params={"return_to": "https://evil.example/"})).text()
    assert hidden(page, "return_to") == "/login"
    response = await http.post(
        "/login",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": "//evil.example/oauth2/authorize?x",
        },
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/login"


async def test_pages_carry_anti_framing_and_no_store_headers(http: TestClient) -> None:
    response = await http.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def _consent_page(http: TestClient, client_id: str, user: User) -> str:
    params = authorize_params(client_id, scope="photos:read photos:write")
    response = await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    return_to = query_of(response.headers["Location"])["return_to"]
    assert await sign_in(http, user.username, PASSWORD, return_to) == 303
    response = await http.get(return_to, allow_redirects=False)
    assert response.status == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    return await response.text()


async def test_consent_page_shows_client_and_scopes_in_words(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    client, _ = await new_client(name="Photo Printer <b>")
    page = await _consent_page(http, client.client_id, user)
    assert "Photo Printer &lt;b&gt;" in page  # escaped
    assert "See your photos and their titles" in page
    assert "Upload new photos and delete existing ones" in page
    assert 'name="consent" value="allow"' in page and 'name="consent" value="deny"' in page


async def test_consent_needs_the_csrf_token(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, _ = await new_client()
    page = await _consent_page(http, client.client_id, user)
    response = await http.post(
        "/consent",
        data={"csrf_token": "forged", "request_id": hidden(page, "request_id"), "consent": "allow"},
        allow_redirects=False,
    )
    assert response.status == 400
    assert "Location" not in response.headers


async def test_consent_is_answered_once(http: TestClient, new_client: ClientFactory, user: User) -> None:
    client, _ = await new_client()
    page = await _consent_page(http, client.client_id, user)
    form = {
        "csrf_token": hidden(page, "csrf_token"),
        "request_id": hidden(page, "request_id"),
        "consent": "allow",
    }
    first = await http.post("/consent", data=form, allow_redirects=False)
    assert first.status == 303
    again = await http.post("/consent", data=form, allow_redirects=False)
    assert again.status == 400


async def test_logout_ends_the_session(http: TestClient, user: User) -> None:
    assert await sign_in(http, user.username, PASSWORD) == 303
    page = await (await http.get("/login")).text()
    response = await http.post(
        "/logout", data={"csrf_token": hidden(page, "csrf_token")}, allow_redirects=False
    )
    assert response.status == 303
    assert "Sign in" in await (await http.get("/login")).text()
