"""Attack tests (issue 7): each test mounts one attack of RFC 9700 / RFC 6819 / RFC 8725 against the real
servers and fails if the defence it names were removed.

Attacks already covered elsewhere are not repeated here (see the issue's table); this module holds
the missing ones and those whose existing test did not clearly assert the defence.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher, extract_parameters
from cryptography.hazmat.primitives import serialization
from multidict import CIMultiDictProxy
from pytest_aiohttp.plugin import AiohttpServer
from redis.asyncio import Redis
from yarl import URL

from auth_server import platform
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.signing import SigningKey
from auth_server.stores.users import User
from resource_server.app import create_app as create_resource_app
from tests.integration.test_photo_warehouse import resource_settings
from tests.support.flow import (
    REDIRECT_URI,
    Pkce,
    authorize_params,
    basic,
    hidden,
    obtain_code,
    query_of,
    sign_in,
)
from tests.support.servers import PASSWORD, ClientFactory, LiveServer
from tests.unit.test_jwt_validation import ec_key, hand_made, public_jwk

COOKIE = "tessera_session"  # the session cookie's name for an http:// issuer


# --- helpers ---------------------------------------------------------------------------------


async def _authorize(http: TestClient, params: dict[str, str]) -> ClientResponse:
    return await http.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)


async def _redeem(http: TestClient, client: Client, secret: str | None, **form: str) -> ClientResponse:
    data = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI, **form}
    if secret is None:
        return await http.post("/oauth2/token", data={**data, "client_id": client.client_id})
    return await http.post("/oauth2/token", data=data, headers=basic(client.client_id, secret))


def _session_id(http: TestClient) -> str | None:
    return next((c.value for c in http.session.cookie_jar if c.key == COOKIE), None)


def _browse_with(http: TestClient, session_id: str | None) -> None:
    """Make the test client's browser carry exactly this session cookie (or none)."""
    jar = http.session.cookie_jar
    jar.clear()
    if session_id is not None:
        jar.update_cookies({COOKIE: session_id}, URL(str(http.make_url("/"))))


@pytest.fixture
async def consented(http: TestClient, new_client: ClientFactory, user: User) -> tuple[Client, str]:
    """A confidential client, and a user signed in who has already consented to photos:read for it.

    Any authorization request the server wrongly accepted would therefore be answered at once with
    a code, with no page in between: the strongest position for an attacker.
    """
    client, secret = await new_client()
    assert secret
    assert "code" in await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD)
    return client, secret


# --- open redirect via redirect_uri (RFC 9700 §4.1.3, §4.11.2; RFC 6819 §5.2.3.5) ---------------


async def _assert_refused_without_redirect(http: TestClient, client: Client, attempts: list[str]) -> None:
    # the control: the registered URI itself gets a code straight away (signed in, consented)
    response = await _authorize(http, authorize_params(client.client_id))
    assert response.status == 302 and response.headers["Location"].startswith(REDIRECT_URI + "?code=")
    for uri in attempts:
        response = await _authorize(http, authorize_params(client.client_id, redirect_uri=uri))
        page = await response.text()
        assert response.status == 400, uri
        assert "Location" not in response.headers, uri
        assert response.content_type == "text/html", uri
        assert "redirect_uri is not registered" in page, uri


async def test_open_redirect_prefix_is_refused(http: TestClient, consented: tuple[Client, str]) -> None:
    """RFC 9700 §4.1.3: a URI that merely starts with the registered one (prefix matching) is refused."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            REDIRECT_URI + "evil",
            REDIRECT_URI + ".evil.example",
            REDIRECT_URI + "/evil",
            REDIRECT_URI + "?next=https://evil.example/",
            REDIRECT_URI + "&x=1",
            "https://printer.example.evil.example/callback",
            "https://printer.example:8443/callback",
        ],
    )


async def test_open_redirect_suffix_is_refused(http: TestClient, consented: tuple[Client, str]) -> None:
    """RFC 9700 §4.1.3: a URI or host that merely ends with the registered one (suffix match) is refused."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            "https://evil.example/" + REDIRECT_URI,
            "https://evil.example/?" + REDIRECT_URI,
            "https://evilprinter.example/callback",
            "https://evil.printer.example/callback",
            "http://printer.example/callback",
        ],
    )


async def test_open_redirect_userinfo_at_is_refused(http: TestClient, consented: tuple[Client, str]) -> None:
    """RFC 9700 §4.1.1: a userinfo part (``registered@evil``) that moves the host is refused."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            "https://printer.example@evil.example/callback",
            "https://printer.example:443@evil.example/callback",
            "https://printer.example%40evil.example/callback",
            "https://evil.example@printer.example/callback",
            "https://user:pass@printer.example/callback",
        ],
    )


async def test_open_redirect_path_traversal_is_refused(
    http: TestClient, consented: tuple[Client, str]
) -> None:
    """RFC 9700 §4.1.3: no path normalisation - dot segments are refused, even those resolving to it."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            REDIRECT_URI + "/../evil",
            REDIRECT_URI + "/..%2F..%2Fevil",
            REDIRECT_URI + "%2F..%2Fevil",
            "https://printer.example/evil/../callback",
            "https://printer.example/./callback",
            "https://printer.example//callback",
        ],
    )


async def test_open_redirect_case_change_is_refused(http: TestClient, consented: tuple[Client, str]) -> None:
    """RFC 9700 §4.1.3: exact string comparison - no case folding of path, host or scheme."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            "https://printer.example/Callback",
            "https://printer.example/CALLBACK",
            "https://PRINTER.EXAMPLE/callback",
            "HTTPS://printer.example/callback",
        ],
    )


async def test_open_redirect_trailing_slash_is_refused(
    http: TestClient, consented: tuple[Client, str]
) -> None:
    """RFC 9700 §4.1.3: a trailing slash, dot or empty query makes another URI, and is refused."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            REDIRECT_URI + "/",
            REDIRECT_URI + "//",
            REDIRECT_URI + "?",
            "https://printer.example./callback",
        ],
    )


async def test_open_redirect_fragment_is_refused(http: TestClient, consented: tuple[Client, str]) -> None:
    """RFC 6749 §3.1.2, RFC 9700 §4.1.3: a fragment in redirect_uri is refused (it could swallow the code)."""
    await _assert_refused_without_redirect(
        http,
        consented[0],
        [
            REDIRECT_URI + "#",
            REDIRECT_URI + "#frag",
            REDIRECT_URI + "#@evil.example",
            REDIRECT_URI + "#/../x",
        ],
    )


# --- PKCE downgrade (RFC 9700 §4.8) ----------------------------------------------------------


async def test_pkce_downgrade_verifier_omitted_is_refused(
    http: TestClient, consented: tuple[Client, str], user: User
) -> None:
    """RFC 9700 §4.8: a code bound to a challenge needs its verifier, even from a confidential client."""
    client, secret = consented
    pkce = Pkce.new()
    code = (await obtain_code(http, authorize_params(client.client_id, pkce=pkce), user.username, PASSWORD))[
        "code"
    ]
    response = await _redeem(http, client, secret, code=code)  # authenticated, but no code_verifier
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_grant" and "access_token" not in body


async def test_pkce_downgrade_plain_method_is_refused(
    http: TestClient, consented: tuple[Client, str], user: User
) -> None:
    """RFC 9700 §2.1.1, §4.8: ``plain`` (or no method) is refused, and so is the challenge as verifier."""
    client, secret = consented
    plain = secrets.token_urlsafe(32)  # 43 characters: well-formed as a challenge, so only the method differs
    for method in ({"code_challenge_method": "plain"}, {}):
        params = {**authorize_params(client.client_id), "code_challenge": plain, **method}
        response = await _authorize(http, params)
        answer = query_of(response.headers["Location"])
        assert answer["error"] == "invalid_request" and "code" not in answer
    # an attacker who saw the (S256) challenge in the front channel cannot present it as a plain verifier
    pkce = Pkce.new()
    code = (await obtain_code(http, authorize_params(client.client_id, pkce=pkce), user.username, PASSWORD))[
        "code"
    ]
    response = await _redeem(http, client, secret, code=code, code_verifier=pkce.challenge)
    assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")
    metadata = await (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]


# --- CSRF (RFC 9700 §4.7; RFC 6749 §10.12; RFC 6819 §4.4.1.8) --------------------------------


async def test_state_is_required_for_clients_not_using_pkce(
    http: TestClient, consented: tuple[Client, str]
) -> None:
    """RFC 9700 §4.7.1: without PKCE, state is the client's CSRF defence, so policy requires it."""
    client, _ = consented
    # signed in and consented: without the check this request would be answered with a code
    response = await _authorize(http, authorize_params(client.client_id, state=None))
    assert response.status == 302
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "invalid_request" and "state" in answer["error_description"]
    assert "code" not in answer
    # with PKCE the request is protected without state, and is answered
    response = await _authorize(http, authorize_params(client.client_id, state=None, pkce=Pkce.new()))
    assert "code" in query_of(response.headers["Location"])


async def test_login_csrf_with_another_sessions_token_is_refused(http: TestClient, user: User) -> None:
    """RFC 9700 §4.7, RFC 6749 §10.12: a login form forged with the attacker's own valid CSRF token fails."""
    # the attacker's login cookie and its genuine token, from the attacker's browser
    _browse_with(http, None)
    attacker_csrf = hidden(await (await http.get("/login")).text(), "csrf_token")
    # the victim's browser, with a login cookie of its own
    _browse_with(http, None)
    await http.get("/login")
    victim_nonce = next(c.value for c in http.session.cookie_jar if c.key == "tessera_login")
    # the attacker's page posts its own credentials and token from the victim's browser (login CSRF)
    forged = {"username": user.username, "password": PASSWORD, "csrf_token": attacker_csrf}
    for csrf in (attacker_csrf, None):
        data = forged if csrf else {k: v for k, v in forged.items() if k != "csrf_token"}
        response = await http.post("/login", data=data, allow_redirects=False)
        assert response.status == 400
        assert "Location" not in response.headers
        assert _session_id(http) is None
    # a browser with no cookie at all fares no better
    _browse_with(http, None)
    response = await http.post("/login", data=forged, allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    assert _session_id(http) is None
    assert victim_nonce


async def test_consent_csrf_with_a_foreign_token_or_request_is_refused(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    """RFC 6749 §10.12, RFC 9700 §4.7: consent needs the session's own CSRF token and its user's request."""
    client, _ = await new_client()
    params = authorize_params(client.client_id, scope="photos:read photos:write")
    attacker = await registry.users.create(f"mallory-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))

    async def consent_page(username: str) -> tuple[str, str, str]:
        """(session id, CSRF token, request id) of a fresh consent page for ``username``."""
        _browse_with(http, None)
        response = await _authorize(http, params)
        return_to = query_of(response.headers["Location"])["return_to"]
        assert await sign_in(http, username, PASSWORD, return_to) == 303
        page = await (await http.get(return_to, allow_redirects=False)).text()
        sid = _session_id(http)
        assert sid
        return sid, hidden(page, "csrf_token"), hidden(page, "request_id")

    attacker_sid, attacker_csrf, attacker_request = await consent_page(attacker.username)
    victim_sid, victim_csrf, victim_request = await consent_page(user.username)
    _browse_with(http, victim_sid)
    forgeries = [
        (attacker_csrf, victim_request),  # the attacker's valid token, with the victim's own request
        (victim_csrf, attacker_request),  # the victim's token (say, leaked), with the attacker's request
    ]
    for csrf, request_id in forgeries:
        response = await http.post(
            "/consent",
            data={"csrf_token": csrf, "request_id": request_id, "consent": "allow"},
            allow_redirects=False,
        )
        assert response.status == 400
        assert "Location" not in response.headers
    assert await registry.consents.granted(user.user_id, client.client_id) == set()
    assert await registry.consents.granted(attacker.user_id, client.client_id) == set()
    # a submission by the wrong user consumed nothing: each request still answers for its owner
    for sid, csrf, request_id in (
        (victim_sid, victim_csrf, victim_request),
        (attacker_sid, attacker_csrf, attacker_request),
    ):
        _browse_with(http, sid)
        response = await http.post(
            "/consent",
            data={"csrf_token": csrf, "request_id": request_id, "consent": "allow"},
            allow_redirects=False,
        )
        assert response.status == 303, await response.text()


# --- clickjacking and Referer leakage: every page the authorization server renders -----------


@dataclass(frozen=True)
class Visit:
    label: str
    method: str
    path: str
    status: int
    headers: CIMultiDictProxy[str]

    @property
    def is_html(self) -> bool:
        return self.headers.get("Content-Type", "").startswith("text/html")


@dataclass
class PageWalk:
    http: TestClient
    visits: list[Visit] = field(default_factory=list)

    async def go(self, label: str, method: str, path: str, **kwargs: Any) -> tuple[ClientResponse, str]:
        response = await self.http.request(method, path, allow_redirects=False, **kwargs)
        text = await response.text()
        self.visits.append(Visit(label, method, urlsplit(path).path, response.status, response.headers))
        return response, text


def _route_of(app: web.Application, path: str) -> str:
    """The route a visited path matched, as the router names it (``/developers/apps/{client_id}``)."""
    for resource in app.router.resources():
        if resource._match(path) is not None:  # type: ignore[attr-defined]
            return resource.canonical
    return path


async def _visit_consoles(walk: PageWalk, registry: Registry, user: User) -> None:
    """The developer console and the admin console (issue 15), signed in: as a developer, then as a
    user who is not an admin (page not found), then as one who is."""
    _, page = await walk.go("developer console", "GET", "/developers")
    csrf = hidden(page, "csrf_token")
    await walk.go("developer console: apply form", "GET", "/developers/apply")
    application = {
        "csrf_token": csrf,
        "client_name": "Console App",
        "description": "Shows photos.",
        "client_uri": "https://console.example/",
        "policy_uri": "https://console.example/privacy",
        "contact_name": "Li Na",
        "contact_email": "li@console.example",
        "redirect_uris": "https://console.example/cb",
        "scope": "photos:read",
        "scope_justification": "To show them.",
    }
    await walk.go(
        "developer console: apply, a problem",
        "POST",
        "/developers/apply",
        data={**application, "contact_email": "x"},
    )
    response, _ = await walk.go("developer console: applied", "POST", "/developers/apply", data=application)
    app_path = response.headers["Location"].split("?")[0]
    client_id = app_path.rsplit("/", 1)[1]
    await walk.go(
        "developer console: forged CSRF (error page)", "POST", f"{app_path}/secret", data={"csrf_token": "x"}
    )
    await walk.go(
        "developer console: secret before approval", "POST", f"{app_path}/secret", data={"csrf_token": csrf}
    )
    await platform.approve(registry, client_id)
    await walk.go("developer console: app page", "GET", app_path)
    await walk.go("developer console: secret shown", "POST", f"{app_path}/secret", data={"csrf_token": csrf})
    await walk.go("developer console: edit form", "GET", f"{app_path}/edit")
    await walk.go("developer console: edited", "POST", f"{app_path}/edit", data=application)
    await walk.go("developer console: another's app", "GET", "/developers/apps/someone-elses")
    await walk.go("admin console: not an admin", "GET", "/admin")
    await walk.go("admin console: app, not an admin", "GET", f"/admin/apps/{client_id}")
    decision = {"csrf_token": csrf, "decision": "suspend", "reason": "Abuse"}
    await walk.go("admin console: decision, not an admin", "POST", f"/admin/apps/{client_id}", data=decision)
    await registry.users.set_admin(user.user_id, True)
    await walk.go("admin console", "GET", "/admin")
    await walk.go("admin console: app", "GET", f"/admin/apps/{client_id}")
    await walk.go("admin console: suspended", "POST", f"/admin/apps/{client_id}", data=decision)
    await registry.users.set_admin(user.user_id, False)


async def _visit_account_pages(walk: PageWalk) -> None:
    """Sign-up, verification and password reset (issue 18). This app has neither sign-up nor a mail
    server, so each answers its page-not-found page (tests/integration/test_signup.py walks them on
    an app that has both)."""
    for path in ("/signup", "/signup/sent", "/signup/verify", "/signup/resend"):
        await walk.go(f"account pages: {path} (off)", "GET", path)
    for path in ("/password-reset", "/password-reset/sent", "/password-reset/new"):
        await walk.go(f"account pages: {path} (no mail)", "GET", path)
    for path in ("/signup", "/signup/verify", "/signup/resend", "/password-reset", "/password-reset/new"):
        await walk.go(f"account pages: POST {path} (off)", "POST", path, data={"csrf_token": "x"})


async def _visit_security_and_device_pages(walk: PageWalk) -> None:
    """Two-step sign-in and the sessions page, the device verification pages and the language
    switch (issues 17, 18), signed in; their forms are posted with forged CSRF tokens (their own
    tests run them for real)."""
    await walk.go("security page", "GET", "/account/security")
    await walk.go("security: authenticator setup", "GET", "/account/security/totp")
    for path in (
        "/account/security/totp",
        "/account/security/totp/confirm",
        "/account/security/totp/off",
        "/account/security/recovery-codes",
        "/account/security/passkeys",
        "/account/security/passkeys/remove",
        "/account/security/sessions/end",
        "/account/security/password",
    ):
        await walk.go(f"security: POST {path} (forged CSRF)", "POST", path, data={"csrf_token": "x"})
    await walk.go("two-step page (nothing pending)", "GET", "/login/two-step")
    await walk.go("two-step: POST (nothing pending)", "POST", "/login/two-step", data={"csrf_token": "x"})
    await walk.go("passkey sign-in: forged", "POST", "/login/passkey", data={"csrf_token": "x"})
    await walk.go("device page", "GET", "/device")
    code = {"csrf_token": "x", "user_code": "BCDF-GHJK"}
    await walk.go("device: forged CSRF", "POST", "/device", data=code)
    await walk.go("device consent: forged CSRF", "POST", "/device/consent", data={"csrf_token": "x"})
    await walk.go("language switch", "GET", "/language?lang=zh-Hans&next=/account")


async def _visit_every_page(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> list[Visit]:
    """Every HTML page of the authorization server, and every redirect it answers a browser with."""
    walk = PageWalk(http)
    client, _ = await new_client()
    _, page = await walk.go("login form", "GET", "/login")
    csrf = hidden(page, "csrf_token")
    response, _ = await walk.go("account page: to the login page", "GET", "/account")
    assert response.status == 303
    login = {"username": user.username, "password": PASSWORD, "csrf_token": csrf}
    await walk.go("login: forged CSRF token", "POST", "/login", data={**login, "csrf_token": "forged"})
    await walk.go("login: wrong password", "POST", "/login", data={**login, "password": "wrong password"})
    await walk.go("login: not a form (error page)", "POST", "/login", json=login)
    locked = {**login, "username": f"locked-{uuid.uuid4().hex[:8]}"}
    for _ in range(registry.settings.login_max_failures):
        await http.post("/login", data=locked)
    response, _ = await walk.go("login: locked out", "POST", "/login", data=locked)
    assert response.status == 429
    await walk.go("authorize: unknown client (error page)", "GET", "/oauth2/authorize?client_id=nobody")
    params = authorize_params(client.client_id)
    response, _ = await walk.go(
        "authorize: to the login page", "GET", f"/oauth2/authorize?{urlencode(params)}"
    )
    return_to = query_of(response.headers["Location"])["return_to"]
    response, _ = await walk.go("login: signed in", "POST", "/login", data={**login, "return_to": return_to})
    assert response.status == 303
    response, page = await walk.go("consent page", "GET", return_to)
    assert response.status == 200
    decision = {"csrf_token": hidden(page, "csrf_token"), "request_id": hidden(page, "request_id")}
    await walk.go(
        "consent: forged CSRF (error page)", "POST", "/consent", data={**decision, "csrf_token": "x"}
    )
    response, _ = await walk.go("consent: allowed", "POST", "/consent", data={**decision, "consent": "allow"})
    assert "code" in query_of(response.headers["Location"])
    response, _ = await walk.go("authorize: consent stored", "GET", return_to)
    assert "code" in query_of(response.headers["Location"])
    response, _ = await walk.go("authorize: a POSTed request", "POST", "/oauth2/authorize", data=params)
    assert "code" in query_of(response.headers["Location"])
    form_post = {**params, "response_mode": "form_post"}
    response, page = await walk.go(
        "authorize: form_post answer", "GET", f"/oauth2/authorize?{urlencode(form_post)}"
    )
    assert response.status == 200 and 'name="code"' in page
    wider = authorize_params(client.client_id, scope="photos:read photos:write")
    _, page = await walk.go("consent page (wider scope)", "GET", f"/oauth2/authorize?{urlencode(wider)}")
    decision = {"csrf_token": hidden(page, "csrf_token"), "request_id": hidden(page, "request_id")}
    response, _ = await walk.go("consent: denied", "POST", "/consent", data={**decision, "consent": "deny"})
    assert query_of(response.headers["Location"])["error"] == "access_denied"
    bad_scope = authorize_params(client.client_id, scope="no-such:scope")
    await walk.go("authorize: error redirect", "GET", f"/oauth2/authorize?{urlencode(bad_scope)}")
    _, page = await walk.go("account page", "GET", "/account")
    revoke = {"csrf_token": hidden(page, "csrf_token"), "revoke": client.client_id}
    await walk.go("account: forged CSRF (error page)", "POST", "/account", data={**revoke, "csrf_token": "x"})
    response, _ = await walk.go("account: app revoked", "POST", "/account", data=revoke)
    assert response.status == 303
    await walk.go("account page: after revoking", "GET", response.headers["Location"])
    _, page = await walk.go("signed-in page", "GET", "/login")
    assert "signed in as" in page
    await walk.go("login page while signed in", "GET", f"/login?{urlencode({'return_to': return_to})}")
    await _visit_consoles(walk, registry, user)
    await _visit_account_pages(walk)
    await _visit_security_and_device_pages(walk)
    response, _ = await walk.go("end session: confirmation page", "GET", "/oauth2/logout")
    assert response.status == 200
    await walk.go("end session: forged CSRF (error page)", "POST", "/oauth2/logout", data={"csrf_token": "x"})
    await walk.go("logout: forged CSRF (error page)", "POST", "/logout", data={"csrf_token": "forged"})
    await walk.go("logout", "POST", "/logout", data={"csrf_token": hidden(page, "csrf_token")})

    # every route that renders HTML was visited (a new page must be added to this walk)
    app = http.app
    assert app is not None
    html_routes = {
        ("GET" if route.method == "HEAD" else route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and getattr(route.handler, "__tessera_html__", False)
    }
    visited = {(visit.method, _route_of(app, visit.path)) for visit in walk.visits}
    assert html_routes <= visited, f"HTML routes not visited: {html_routes - visited}"
    return walk.visits


async def test_clickjacking_every_html_page_forbids_framing(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """RFC 9700 §4.16, RFC 6819 §4.4.1.9: every page (login, consent, error, lockout...) denies framing."""
    pages = [visit for visit in await _visit_every_page(http, registry, new_client, user) if visit.is_html]
    rendered = {page.label for page in pages}
    assert {"login form", "login: locked out", "consent page", "signed-in page"} <= rendered
    assert {"authorize: unknown client (error page)", "consent: forged CSRF (error page)"} <= rendered
    for page in pages:
        assert page.headers.get("X-Frame-Options") == "DENY", page.label
        directives = [d.strip() for d in page.headers.get("Content-Security-Policy", "").split(";")]
        assert "frame-ancestors 'none'" in directives, page.label


async def test_referer_leakage_every_page_and_redirect_sends_no_referrer(
    http: TestClient, registry: Registry, new_client: ClientFactory, user: User
) -> None:
    """RFC 9700 §4.2.4: pages and the redirects carrying codes set ``Referrer-Policy: no-referrer``."""
    visits = await _visit_every_page(http, registry, new_client, user)
    redirects = [visit for visit in visits if visit.status in (302, 303)]
    assert len(redirects) >= 7
    for visit in visits:
        assert visit.headers.get("Referrer-Policy") == "no-referrer", visit.label


# --- refresh token scope escalation (RFC 6749 §6; RFC 9700 §2.3) ------------------------------


async def test_scope_escalation_on_refresh_beyond_the_grant_is_refused(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """RFC 6749 §6: a refresh may not add a scope the user never granted, even one the client may have."""
    client, secret = await new_client(scope="photos:read photos:write")
    assert secret
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    tokens = await (await _redeem(http, client, secret, code=code)).json()
    assert tokens["scope"] == "photos:read"

    async def refresh(**extra: str) -> ClientResponse:
        return await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **extra},
            headers=basic(client.client_id, secret),
        )

    for wider in ("photos:write", "photos:read photos:write"):
        response = await refresh(scope=wider)
        body = await response.json()
        assert (response.status, body["error"]) == (400, "invalid_scope"), wider
        assert "access_token" not in body
    response = await refresh()
    assert response.status == 200
    body = await response.json()
    assert body["scope"] == "photos:read"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["scope"] == "photos:read"


# --- client impersonation (RFC 6749 §10.2, §3.2.1; RFC 9700 §2.5) -----------------------------


async def test_client_impersonation_public_client_with_a_confidential_clients_id_is_refused(
    http: TestClient, new_client: ClientFactory, user: User
) -> None:
    """RFC 6749 §10.2: a stolen code plus a confidential client's id, without its secret, gets nothing."""
    client, secret = await new_client()
    assert secret
    code = (await obtain_code(http, authorize_params(client.client_id), user.username, PASSWORD))["code"]
    response = await _redeem(http, client, None, code=code)  # client_id only: "I am a public client"
    assert response.status == 401
    body = await response.json()
    assert body["error"] == "invalid_client" and "access_token" not in body
    # the attempt was refused before the code was looked at: the real client still redeems it
    response = await _redeem(http, client, secret, code=code)
    assert response.status == 200
    tokens = await response.json()
    # nor can the impostor revoke or introspect the client's tokens
    for endpoint in ("/oauth2/revoke", "/oauth2/introspect"):
        response = await http.post(
            endpoint, data={"token": tokens["refresh_token"], "client_id": client.client_id}
        )
        assert (response.status, (await response.json())["error"]) == (401, "invalid_client"), endpoint
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(client.client_id, secret),
    )
    assert response.status == 200


# --- user enumeration (RFC 6749 §10.10; RFC 9700 §2.4) ----------------------------------------


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 hash verified from now on (the real verification still runs)."""
    verified: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, encoded: str | bytes, password: str | bytes) -> Literal[True]:
        verified.append(encoded if isinstance(encoded, str) else encoded.decode())
        return original(self, encoded, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    return verified


def _comparable_headers(response: ClientResponse) -> list[tuple[str, str]]:
    """The headers, minus the per-request id and date; a cookie counts by name only."""
    out = []
    for name, value in response.headers.items():
        if name.lower() in ("date", "x-request-id"):
            continue
        out.append((name.lower(), value.split("=", 1)[0] if name.lower() == "set-cookie" else value))
    return sorted(out)


def _unknown_username_like(user: User) -> str:
    unknown = "ghst-" + uuid.uuid4().hex[: len(user.username) - 5]
    assert len(unknown) == len(user.username)  # so the echoed name cannot change the length
    return unknown


async def test_user_enumeration_login_page_answers_and_costs_the_same(
    http: TestClient, user: User, argon2_verifications: list[str]
) -> None:
    """RFC 6749 §10.10: unknown user and wrong password run the same argon2 work and get the same page."""
    unknown = _unknown_username_like(user)
    csrf = hidden(await (await http.get("/login")).text(), "csrf_token")
    outcomes = []
    for username in (user.username, unknown):
        argon2_verifications.clear()
        response = await http.post(
            "/login",
            data={"username": username, "password": "not the password", "csrf_token": csrf},
            allow_redirects=False,
        )
        body = (await response.read()).replace(username.encode(), b"{username}")
        # the form's fresh CSRF token carries the second it was issued (login_csrf.py): two answers
        # a second apart differ there and nowhere else
        body = re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token" value="{csrf}"', body)
        outcomes.append((response.status, body, _comparable_headers(response), list(argon2_verifications)))
    (status_a, body_a, headers_a, hashes_a), (status_b, body_b, headers_b, hashes_b) = outcomes
    assert status_a == status_b == 400
    assert body_a == body_b
    assert headers_a == headers_b
    assert len(hashes_a) == len(hashes_b) >= 1
    assert [extract_parameters(h) for h in hashes_a] == [extract_parameters(h) for h in hashes_b]


async def test_user_enumeration_password_grant_answers_and_costs_the_same(
    http: TestClient, new_client: ClientFactory, user: User, argon2_verifications: list[str]
) -> None:
    """RFC 6749 §10.10, RFC 9700 §2.4: the password grant answers both alike, after the same argon2 work."""
    client, secret = await new_client(grant_types=["password", "refresh_token"])
    assert secret
    outcomes = []
    for username in (user.username, _unknown_username_like(user)):
        argon2_verifications.clear()
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "password", "username": username, "password": "not the password"},
            headers=basic(client.client_id, secret),
        )
        outcomes.append(
            (
                response.status,
                await response.read(),
                _comparable_headers(response),
                list(argon2_verifications),
            )
        )
    (status_a, body_a, headers_a, hashes_a), (status_b, body_b, headers_b, hashes_b) = outcomes
    assert status_a == status_b == 400
    assert json.loads(body_a)["error"] == "invalid_grant"
    assert body_a == body_b
    assert headers_a == headers_b
    assert len(hashes_a) == len(hashes_b) >= 1
    assert [extract_parameters(h) for h in hashes_a] == [extract_parameters(h) for h in hashes_b]


# --- session fixation ------------------------------------------------------------------------


async def test_session_fixation_planted_session_id_is_worthless_after_login(
    http: TestClient, new_client: ClientFactory, registry: Registry, user: User
) -> None:
    """RFC 9700 §4.7 (login CSRF's twin): login replaces the session id; a planted one is worth nothing."""
    client, _ = await new_client()
    # a made-up id is never adopted: the server hands out its own
    _browse_with(http, "attacker-chosen-session-id")
    assert await sign_in(http, user.username, PASSWORD) == 303
    assert _session_id(http) not in (None, "attacker-chosen-session-id")
    # the login page hands out no session at all before login; so the attacker signs in as itself
    # and plants its own session id in the victim's browser
    mallory = await registry.users.create(f"mallory-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    _browse_with(http, None)
    await http.get("/login")
    assert _session_id(http) is None
    assert await sign_in(http, mallory.username, PASSWORD) == 303
    planted = _session_id(http)
    assert planted
    planted_page = await (await http.get("/login")).text()
    _browse_with(http, planted)
    assert await sign_in(http, user.username, PASSWORD) == 303
    fresh = _session_id(http)
    assert fresh and fresh != planted
    assert await registry.sessions.get(planted) is None
    # the attacker, holding the planted id, is not signed in
    _browse_with(http, planted)
    response = await _authorize(http, authorize_params(client.client_id))
    assert response.status == 302 and urlsplit(response.headers["Location"]).path == "/login"
    _browse_with(http, planted)
    assert "signed in as" not in await (await http.get("/login")).text()
    # and the CSRF token known from the planted session does not work in the new one
    _browse_with(http, fresh)
    response = await http.post(
        "/logout", data={"csrf_token": hidden(planted_page, "csrf_token")}, allow_redirects=False
    )
    assert response.status == 400
    assert "signed in as" in await (await http.get("/login")).text()


# --- forged JWT access tokens, at every verifier (RFC 8725; RFC 9068 §4) ----------------------


@dataclass
class Verifiers:
    """The three places that verify Tessera's access tokens: introspection, revocation, the Photo Warehouse.

    Forged tokens carry the ``jti`` of a live victim token and the attacking client's ``client_id``:
    had revocation accepted one, it would have deny-listed the victim's token.
    """

    live: LiveServer
    warehouse: TestClient
    browser: aiohttp.ClientSession
    introspector: tuple[str, str]
    attacker: tuple[str, str]
    victim_token: str

    @property
    def key(self) -> SigningKey:
        registry = self.live.registry
        return registry.keyring.active(datetime.now(UTC), registry.settings.signing_alg)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        victim = jwt.decode(self.victim_token, options={"verify_signature": False})
        return {**victim, "client_id": self.attacker[0], "iat": now, "exp": now + 600, **overrides}

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        """Signed with the issuer's real private key."""
        key = self.key
        return jwt.encode(
            claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt", **headers}
        )

    async def introspect(self, token: str) -> dict[str, Any]:
        async with self.browser.post(
            f"{self.live.url}/oauth2/introspect", data={"token": token}, headers=basic(*self.introspector)
        ) as response:
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = await response.json()
            return answer

    async def resource(self, token: str) -> tuple[int, str]:
        response = await self.warehouse.get("/api/photos", headers={"Authorization": f"Bearer {token}"})
        return response.status, response.headers.get("WWW-Authenticate", "")

    async def assert_accepted(self, token: str) -> None:
        assert (await self.introspect(token))["active"] is True
        assert (await self.resource(token))[0] == 200

    async def assert_refused(self, token: str) -> None:
        assert await self.introspect(token) == {"active": False}
        status, challenge = await self.resource(token)
        assert status == 401 and 'error="invalid_token"' in challenge, (status, challenge)
        async with self.browser.post(
            f"{self.live.url}/oauth2/revoke", data={"token": token}, headers=basic(*self.attacker)
        ) as response:
            assert response.status == 200, await response.text()
        assert (await self.introspect(self.victim_token))["active"] is True


@pytest.fixture
async def verifiers(
    live_server: LiveServer, database_url: str, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> AsyncIterator[Verifiers]:
    registry = live_server.registry
    credentials = []
    for name, introspection in (("Introspector", True), ("Attacker", False)):
        client, secret = await registry.clients.create(
            name=name,
            redirect_uris=[],
            grant_types=["client_credentials"],
            scope=["warehouse:stats"],
            auth_method="client_secret_basic",
            allow_introspection=introspection,
        )
        assert secret
        credentials.append((client.client_id, secret))
    issuer = registry.access_tokens
    # the victim's token, of an approved client (introspection answers only for those)
    victim = issuer.sign(
        issuer.prepare(), subject=str(uuid.uuid4()), client_id=credentials[0][0], scope=("photos:read",)
    )
    settings = resource_settings(live_server.url, live_server.settings.access_token_audience, database_url)
    warehouse = await aiohttp_client(create_resource_app(settings))
    async with aiohttp.ClientSession() as browser:
        found = Verifiers(live_server, warehouse, browser, credentials[0], credentials[1], victim)
        # the control: a token signed like the forgeries, but honestly, passes everywhere
        await found.assert_accepted(found.sign(found.claims()))
        yield found


@dataclass
class StoreTraffic:
    """What reached PostgreSQL, Redis and the file system while it was recording."""

    queries: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)

    def mentioning(self, needle: str) -> list[str]:
        return [entry for entry in (*self.queries, *self.commands) if needle in entry]


_OPEN_WATCHERS: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _OPEN_WATCHERS:
        for watcher in _OPEN_WATCHERS:
            watcher.append(str(args[0]))


@cache
def _install_audit_hook() -> None:
    sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only while a test watches


@pytest.fixture
def store_traffic(monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreTraffic]:
    traffic = StoreTraffic()

    def record_sql(name: str) -> None:
        original = getattr(asyncpg.connection.Connection, name)

        async def recorder(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
            traffic.queries.append(" ".join(str(part) for part in (query, *args)))
            return await original(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.connection.Connection, name, recorder)

    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        record_sql(name)
    original_command: Callable[..., Awaitable[Any]] = Redis.execute_command

    async def record_command(self: Redis, *args: Any, **options: Any) -> Any:
        traffic.commands.append(" ".join(str(arg) for arg in args))
        return await original_command(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", record_command)
    _install_audit_hook()
    _OPEN_WATCHERS.append(traffic.opened)
    try:
        yield traffic
    finally:
        _OPEN_WATCHERS.remove(traffic.opened)


ATTACKER_SECRET = b"attacker-chosen-hmac-secret"


async def test_jwt_kid_path_traversal_and_sql_injection_are_refused(
    verifiers: Verifiers, store_traffic: StoreTraffic
) -> None:
    """RFC 8725 §3.10: ``kid`` is only an exact key name, never a file path or a query fragment."""
    attacker = ec_key("rfc9700-attacker")
    real_kid = verifiers.key.kid
    keys_before = [k.kid for k in await verifiers.live.registry.keys.all()]
    kids = [
        "../../../../../../../../dev/null",  # an empty file: the HMAC key would be b""
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "/proc/self/environ",
        "..\\..\\..\\windows\\win.ini",
        "' UNION SELECT 'attacker-chosen-hmac-secret' --",  # the HMAC key would be the attacker's
        "x' UNION SELECT encode('attacker-chosen-hmac-secret', 'escape') --",
        "' OR 1=1 --",
        "' OR '1'='1",
        "x'; DROP TABLE signing_keys; --",
        "%",
        f"{real_kid}' OR '1'='1",
        f"../{real_kid}",
        f"{real_kid}\u0000",
        "\u0000' OR 1=1 --",
    ]
    for kid in kids:
        for secret in (b"", ATTACKER_SECRET):
            header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
            await verifiers.assert_refused(hand_made(header, verifiers.claims(), secret))
        header = {"kid": kid, "typ": "at+jwt"}
        await verifiers.assert_refused(jwt.encode(verifiers.claims(), attacker, "ES256", headers=header))
    # the kid never reached a query, a Redis command or the file system
    for kid in kids:
        if len(kid) >= 4:
            assert store_traffic.mentioning(kid) == [], kid
    touched = [
        p for p in store_traffic.opened if any(s in p for s in ("passwd", "dev/null", "environ", "win.ini"))
    ]
    assert touched == []
    # and changed nothing: the keys, the JWKS and the victim's token are as they were
    assert [k.kid for k in await verifiers.live.registry.keys.all()] == keys_before
    async with verifiers.browser.get(f"{verifiers.live.url}/oauth2/jwks") as response:
        assert real_kid in [k["kid"] for k in (await response.json())["keys"]]
    await verifiers.assert_accepted(verifiers.sign(verifiers.claims()))


async def test_jwt_alg_none_is_refused(verifiers: Verifiers) -> None:
    """RFC 8725 §2.1, §3.1: an unsigned token naming the issuer's key is refused by every verifier."""
    real_kid = verifiers.key.kid
    for alg in ("none", "None", "NONE", "nOnE"):
        header = {"alg": alg, "typ": "at+jwt", "kid": real_kid}
        await verifiers.assert_refused(hand_made(header, verifiers.claims(), None))
    # a genuine token whose header is swapped for alg none, the real signature kept or dropped
    genuine = verifiers.sign(verifiers.claims())
    _, payload, signature = genuine.split(".")
    none_header = hand_made({"alg": "none", "typ": "at+jwt", "kid": real_kid}, {}, None).split(".")[0]
    for forged in (f"{none_header}.{payload}.", f"{none_header}.{payload}.{signature}"):
        await verifiers.assert_refused(forged)


async def test_jwt_hs256_signed_with_the_public_key_is_refused(verifiers: Verifiers) -> None:
    """RFC 8725 §2.1, §3.1: algorithm confusion - the published public key used as an HMAC secret."""
    key = verifiers.key
    pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with verifiers.browser.get(f"{verifiers.live.url}/oauth2/jwks") as response:
        published = next(k for k in (await response.json())["keys"] if k["kid"] == key.kid)
    der = key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    candidates = [
        pem,
        pem.strip(),
        der,
        json.dumps(published).encode(),
        json.dumps(published, separators=(",", ":")).encode(),
    ]
    for secret in candidates:
        header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
        await verifiers.assert_refused(hand_made(header, verifiers.claims(), secret))


async def test_jwt_jku_x5u_and_embedded_jwk_headers_are_ignored(
    verifiers: Verifiers, aiohttp_server: AiohttpServer
) -> None:
    """RFC 8725 §3.10: keys come from the issuer's JWKS only, never from a URL or key the token carries."""
    attacker = ec_key("rfc9700-attacker")
    hits: list[str] = []

    async def attacker_keys(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": [public_jwk(attacker, verifiers.key.kid, "ES256")]})

    app = web.Application()
    app.router.add_get("/{tail:.*}", attacker_keys)
    server = await aiohttp_server(app)
    pointers = {"jku": str(server.make_url("/jwks.json")), "x5u": str(server.make_url("/cert.pem"))}
    embedded = {"jwk": public_jwk(attacker, "attacker", "ES256")}
    for headers in (pointers, embedded, {**pointers, **embedded}):
        for kid in (verifiers.key.kid, "attacker"):
            token = jwt.encode(
                verifiers.claims(),
                attacker,
                algorithm="ES256",
                headers={"kid": kid, "typ": "at+jwt", **headers},
            )
            await verifiers.assert_refused(token)
        # the issuer's own token carrying the same headers is still judged by the issuer's key: accepted
        await verifiers.assert_accepted(verifiers.sign(verifiers.claims(), **headers))
    assert hits == []


async def test_jwt_expired_and_not_yet_valid_tokens_are_refused(verifiers: Verifiers) -> None:
    """RFC 9068 §4, RFC 7519 §4.1.4-4.1.6: tokens past exp, before nbf or issued in the future are refused."""
    now = int(time.time())
    for times in (
        {"iat": now - 720, "exp": now - 120},  # expired, well beyond any leeway
        {"nbf": now + 300},  # not valid yet
        {"iat": now + 300, "exp": now + 900},  # issued in the future
    ):
        await verifiers.assert_refused(verifiers.sign(verifiers.claims(**times)))
