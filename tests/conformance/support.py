"""What the conformance modules share: an OpenID client registered with its metadata, the browser's
part of an authentication request (sign in, consent), the token and userinfo requests, and the
relying party's checks of an ID token — its signature against the published JWK Set included.

The tests mirror the OpenID Foundation's OP test plans (``oidcc-basic-certification-test-plan``
and the others); each test is named after the module it covers. The suite itself cannot run here
(it needs MongoDB), so these are its checks, made against the real app (PostgreSQL and Redis).
As the suite does, the clients run the code flow without PKCE unless a test says otherwise (an
operator certifying Tessera relaxes ``require_pkce`` for the suite's confidential clients);
``state`` is always sent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from auth_server.clients import Client
from auth_server.registration import ClientMetadata, register
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.support.flow import Pkce, basic, hidden
from tests.support.servers import PASSWORD

ISSUER = "http://localhost:8000"  # the issuer of the `http` fixture's app (tests/support/servers.py)
REDIRECT_URI = "https://printer.example/callback"
DISCOVERY = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"
SCOPES = ("openid", "profile", "email", "offline_access", "photos:read")
CODE_GRANTS = ("authorization_code", "refresh_token")

# the profile the `member` fixture gives its user (OpenID Connect Core §5.1)
PROFILE: dict[str, Any] = {
    "email": "xiaomei@photos.example",
    "email_verified": True,
    "name": "Li Xiaomei",
    "nickname": "小美",
    "picture": "https://photos.example/avatars/xiaomei.png",
    "locale": "zh-CN",
    "zoneinfo": "Asia/Shanghai",
}
PROFILE_CLAIMS = ("name", "nickname", "preferred_username", "picture", "locale", "zoneinfo", "updated_at")
EMAIL_CLAIMS = ("email", "email_verified")


# -- clients ------------------------------------------------------------------------------------------


async def openid_client(
    registry: Registry,
    *,
    response_types: Sequence[str] | None = None,
    grant_types: Sequence[str] = CODE_GRANTS,
    scope: Sequence[str] = SCOPES,
    redirect_uris: Sequence[str] = (REDIRECT_URI,),
    auth_method: str = "client_secret_basic",
    require_pkce: bool = False,
    name: str = "Photo Printer",
    **openid: Any,
) -> tuple[Client, str]:
    """A confidential client registered with OpenID metadata (``openid``: any other
    :class:`ClientMetadata` field), and its secret."""
    client, secret, _ = await register(
        registry,
        ClientMetadata(
            client_name=name,
            redirect_uris=list(redirect_uris),
            grant_types=list(grant_types),
            scope=list(scope),
            token_endpoint_auth_method=auth_method,
            require_pkce=require_pkce,
            response_types=None if response_types is None else list(response_types),
            **openid,
        ),
    )
    assert secret is not None
    return client, secret


async def profiled(registry: Registry, user: User) -> User:
    """``user`` with :data:`PROFILE` as their profile."""
    assert await registry.users.set_profile(user.user_id, dict(PROFILE)) is not None
    return user


# -- the authorization request ------------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def auth_params(
    client: Client,
    *,
    response_type: str = "code",
    scope: str | None = "openid",
    nonce: str | None = None,
    state: str | None = None,
    redirect_uri: str | None = REDIRECT_URI,
    pkce: Pkce | None = None,
    **extra: str,
) -> dict[str, str]:
    """An OpenID Connect authentication request (Core §3.1.2.1)."""
    params = {"response_type": response_type, "client_id": client.client_id}
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    if scope is not None:
        params["scope"] = scope
    params["state"] = state if state is not None else secrets.token_urlsafe(12)
    if nonce is not None:
        params["nonce"] = nonce
    if pkce is not None:
        params.update(code_challenge=pkce.challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def authorize_url(params: Mapping[str, str]) -> str:
    return f"/oauth2/authorize?{urlencode(params)}"


@dataclass
class Browsing:
    """What the browser went through: whether the login page and the consent page were shown."""

    login_shown: bool = False
    consent_shown: bool = False
    login_page: str = ""
    pages: list[str] = field(default_factory=list)


async def login_form(http: TestClient, location: str, username: str, password: str = PASSWORD) -> str:
    """Open the login page the server sent the browser to (``location``, as it is: it may ask to
    sign in again) and submit it; return where the login sends the browser next."""
    page = await http.get(location, allow_redirects=False)
    assert page.status == 200, f"{page.status}: {await page.text()}"
    text = await page.text()
    response = await http.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": hidden(text, "csrf_token"),
            "return_to": hidden(text, "return_to"),
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def browse(
    http: TestClient,
    first: ClientResponse,
    username: str,
    *,
    decision: str = "allow",
    seen: Browsing | None = None,
) -> ClientResponse:
    """Be the user from the authorization endpoint's first answer until it answers the client:
    sign in if asked, consent if asked. Returns the last response (a redirect, or a form_post page)."""
    seen = seen if seen is not None else Browsing()
    response = first
    for _ in range(6):
        location = response.headers.get("Location", "")
        if response.status == 302 and location.startswith("/login"):
            seen.login_shown = True
            seen.login_page = location
            following = await login_form(http, location, username)
            response = await http.get(following, allow_redirects=False)
            continue
        if response.status == 200 and 'name="request_id"' in (text := await response.text()):
            seen.consent_shown = True
            seen.pages.append(text)
            response = await http.post(
                "/consent",
                data={
                    "csrf_token": hidden(text, "csrf_token"),
                    "request_id": hidden(text, "request_id"),
                    "consent": decision,
                },
                allow_redirects=False,
            )
            continue
        return response
    raise AssertionError("the authorization request never answered the client")


async def authenticate(
    http: TestClient, params: Mapping[str, str], username: str, *, seen: Browsing | None = None
) -> str:
    """Send the authentication request and be the user; return the redirect back to the client."""
    first = await http.get(authorize_url(params), allow_redirects=False)
    response = await browse(http, first, username, seen=seen)
    assert response.status in (302, 303), f"{response.status}: {await response.text()}"
    location = response.headers["Location"]
    assert location.startswith(params.get("redirect_uri", REDIRECT_URI)), location
    return location


def response_params(location: str) -> dict[str, str]:
    """The authorization response's parameters, from the query or the fragment, whichever has them."""
    parts = urlsplit(location)
    carrier = parts.fragment if parts.fragment else parts.query
    return dict(parse_qsl(carrier, keep_blank_values=True))


def in_fragment(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert parts.fragment, f"the response is not in the fragment: {location}"
    assert "code" not in dict(parse_qsl(parts.query)), "a code leaked into the query"
    return dict(parse_qsl(parts.fragment, keep_blank_values=True))


def in_query(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert not parts.fragment, f"unexpected fragment: {location}"
    return dict(parse_qsl(parts.query, keep_blank_values=True))


def assert_error_redirect(location: str, error: str, state: str, *, fragment: bool = False) -> dict[str, str]:
    """An error sent back to the client (Core §3.1.2.6): the error code, the request's state and
    the issuer (RFC 9207)."""
    params = in_fragment(location) if fragment else in_query(location)
    assert params.get("error") == error, params
    assert params.get("state") == state, params
    assert params.get("iss") == ISSUER, params
    assert "code" not in params and "id_token" not in params and "access_token" not in params
    return params


async def assert_error_page(response: ClientResponse) -> None:
    """An error shown to the user, never a redirect (no open redirector, RFC 9700 §4.1.3)."""
    assert response.status == 400, f"{response.status}: {response.headers.get('Location')}"
    assert "Location" not in response.headers
    assert response.content_type == "text/html"


# -- the token and userinfo endpoints --------------------------------------------------------------------


async def token_request(
    http: TestClient,
    client: Client,
    secret: str,
    form: Mapping[str, str],
    *,
    auth: str = "client_secret_basic",
) -> ClientResponse:
    data = dict(form)
    headers: dict[str, str] = {}
    if auth == "client_secret_basic":
        headers.update(basic(client.client_id, secret))
    else:
        assert auth == "client_secret_post"
        data.update(client_id=client.client_id, client_secret=secret)
    return await http.post("/oauth2/token", data=data, headers=headers)


async def redeem(
    http: TestClient,
    client: Client,
    secret: str,
    code: str,
    *,
    redirect_uri: str = REDIRECT_URI,
    verifier: str | None = None,
    auth: str = "client_secret_basic",
) -> ClientResponse:
    """The token request of the code flow (Core §3.1.3.1)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return await token_request(http, client, secret, form, auth=auth)


async def tokens_of(response: ClientResponse) -> dict[str, Any]:
    """A successful token response (Core §3.1.3.3): JSON, no-store, a Bearer token."""
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    assert response.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    return body


async def token_error(response: ClientResponse, error: str) -> dict[str, Any]:
    """A token error response (RFC 6749 §5.2): 400 (401 for client authentication), JSON."""
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert response.status == (401 if error == "invalid_client" else 400), body
    assert body["error"] == error, body
    return body


async def userinfo(http: TestClient, access_token: str, how: str = "get") -> ClientResponse:
    """The userinfo request (Core §5.3.1): ``get``, ``post_header`` or ``post_body`` (RFC 6750 §2.1-2.2)."""
    bearer = {"Authorization": f"Bearer {access_token}"}
    if how == "get":
        return await http.get("/oauth2/userinfo", headers=bearer)
    if how == "post_header":
        return await http.post("/oauth2/userinfo", headers=bearer)
    assert how == "post_body"
    return await http.post("/oauth2/userinfo", data={"access_token": access_token})


async def userinfo_claims(http: TestClient, access_token: str, how: str = "get") -> dict[str, Any]:
    response = await userinfo(http, access_token, how)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert isinstance(body.get("sub"), str) and body["sub"]
    return body


# -- ID tokens ------------------------------------------------------------------------------------------


async def jwks(http: TestClient) -> dict[str, Any]:
    """The JWK Set at the discovered ``jwks_uri``."""
    document = await (await http.get(DISCOVERY)).json()
    response = await http.get(urlsplit(document["jwks_uri"]).path)
    assert response.status == 200
    keys: dict[str, Any] = await response.json(content_type=None)
    return keys


def half_hash(value: str) -> str:
    """``at_hash`` / ``c_hash`` of a value for an RS256 or ES256 token (Core §3.1.3.6, §3.3.2.11)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


async def verify_id_token(
    http: TestClient,
    token: str,
    client: Client,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The ID token's claims, checked as a relying party must (Core §3.1.3.7, §3.2.2.11, §3.3.2.12):
    signed by a key of the published JWK Set with the client's registered algorithm, this issuer,
    this client as audience (and azp), unexpired, the request's nonce, and the hashes of what came
    with it."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == client.id_token_signed_response_alg, header
    assert header.get("typ", "JWT") == "JWT", header
    key_set = jwt.PyJWKSet.from_dict(await jwks(http))
    key = key_set[header["kid"]]
    assert key.algorithm_name == header["alg"]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=client.client_id,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    now = time.time()
    assert isinstance(claims["sub"], str) and 0 < len(claims["sub"]) <= 255 and claims["sub"].isascii()
    assert claims["iat"] <= now + 5 and claims["exp"] > now
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= now + 5
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert client.client_id in aud
    if "azp" in claims or len(aud) > 1:
        assert claims["azp"] == client.client_id
    if nonce is None:
        assert "nonce" not in claims, claims
    else:
        assert claims["nonce"] == nonce
    if access_token is not None and "at_hash" in claims:
        assert claims["at_hash"] == half_hash(access_token)
    if code is not None:
        assert claims["c_hash"] == half_hash(code)
    return claims


# -- the whole code flow --------------------------------------------------------------------------------


@dataclass
class Login:
    """A completed code flow: the authorization response, the token response and the ID token's
    verified claims."""

    response: dict[str, str]
    tokens: dict[str, Any]
    id_token: dict[str, Any]
    nonce: str | None
    browsing: Browsing


async def code_flow(
    http: TestClient,
    client: Client,
    secret: str,
    user: User,
    *,
    scope: str | None = "openid",
    nonce: str | None = "",
    pkce: Pkce | None = None,
    auth: str = "client_secret_basic",
    redirect_uri: str = REDIRECT_URI,
    **extra: str,
) -> Login:
    """Run the code flow (Core §3.1) for ``user``, checking the answers as a relying party would.
    ``nonce=""`` (the default) sends a fresh one; ``None`` sends none."""
    sent_nonce = new_nonce() if nonce == "" else nonce
    params = auth_params(client, scope=scope, nonce=sent_nonce, pkce=pkce, redirect_uri=redirect_uri, **extra)
    seen = Browsing()
    location = await authenticate(http, params, user.username, seen=seen)
    answer = in_query(location)
    assert "error" not in answer, answer
    assert answer["state"] == params["state"]
    assert answer["iss"] == ISSUER
    tokens = await tokens_of(
        await redeem(
            http,
            client,
            secret,
            answer["code"],
            redirect_uri=redirect_uri,
            verifier=None if pkce is None else pkce.verifier,
            auth=auth,
        )
    )
    assert "id_token" in tokens, tokens
    claims = await verify_id_token(
        http, tokens["id_token"], client, nonce=sent_nonce, access_token=tokens["access_token"]
    )
    return Login(answer, tokens, claims, sent_nonce, seen)


# -- form_post ------------------------------------------------------------------------------------------

_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def form_post_fields(page: str) -> dict[str, str]:
    return {html.unescape(name): html.unescape(value) for name, value in _INPUT.findall(page)}


def script_hashes(page: str) -> list[str]:
    """The CSP source of each inline script of ``page`` (``'sha256-…'``)."""
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in scripts
    ]


# -- the implicit and hybrid flows ----------------------------------------------------------------------


@dataclass
class FrontChannel:
    """An implicit or hybrid authentication (Core §3.2, §3.3): what was sent, the fragment's
    parameters, and the ID token that came in it, verified."""

    sent: dict[str, str]
    answer: dict[str, str]
    id_token: dict[str, Any]
    browsing: Browsing


async def front_channel(
    http: TestClient,
    client: Client,
    user: User,
    response_type: str,
    *,
    scope: str = "openid",
    **extra: str,
) -> FrontChannel:
    """Run an implicit or hybrid request with a fresh nonce; the answer must be in the fragment
    (Multiple Response Types §5), with state, iss and an ID token bound to what came with it:
    ``at_hash`` for an access token (Core §3.2.2.10), ``c_hash`` for a code (§3.3.2.11)."""
    sent = auth_params(
        client, response_type=response_type, scope=scope, nonce=new_nonce(), pkce=None, **extra
    )
    seen = Browsing()
    location = await authenticate(http, sent, user.username, seen=seen)
    answer = in_fragment(location)
    assert "error" not in answer, answer
    assert answer["state"] == sent["state"] and answer["iss"] == ISSUER
    values = set(response_type.split())
    assert ("access_token" in answer) == ("token" in values), answer
    assert ("code" in answer) == ("code" in values), answer
    claims = await verify_id_token(
        http,
        answer["id_token"],
        client,
        nonce=sent["nonce"],
        access_token=answer.get("access_token"),
        code=answer.get("code"),
    )
    if "token" in values:
        assert claims["at_hash"] == half_hash(answer["access_token"])  # REQUIRED (§3.2.2.10)
        assert answer["token_type"] == "Bearer"
    else:
        assert "at_hash" not in claims
    if "code" not in values:
        assert "c_hash" not in claims
    return FrontChannel(sent, answer, claims, seen)


# -- logout ---------------------------------------------------------------------------------------------

END_SESSION = "/oauth2/logout"
SIGNED_OUT = "https://printer.example/signed-out"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


async def end_session(http: TestClient, method: str = "GET", **params: str) -> ClientResponse:
    """A request to the discovered end_session_endpoint (RP-Initiated Logout 1.0 §2)."""
    document = await (await http.get(DISCOVERY)).json()
    path = urlsplit(document["end_session_endpoint"]).path
    if method == "GET":
        return await http.get(f"{path}?{urlencode(params)}", allow_redirects=False)
    return await http.post(path, data=params, allow_redirects=False)


async def confirm_sign_out(http: TestClient, page: ClientResponse) -> ClientResponse:
    """Press "Sign out" on the confirmation page the OP showed instead of redirecting."""
    text = await page.text()
    assert page.status == 200 and 'name="confirm"' in text, text
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', text)
    }
    return await http.post(END_SESSION, data={**fields, "confirm": "yes"}, allow_redirects=False)


async def signed_in_silently(http: TestClient, client: Client) -> dict[str, str]:
    """A prompt=none request (Core §3.1.2.1): the answer's parameters — a code if the user is still
    signed in (and consented), ``login_required`` if not."""
    params = auth_params(client, nonce=new_nonce(), prompt="none")
    response = await http.get(authorize_url(params), allow_redirects=False)
    assert response.status == 302, await response.text()
    answer = response_params(response.headers["Location"])
    assert answer["state"] == params["state"]
    return answer


def with_alg_none(token: str) -> str:
    """``token`` re-encoded with ``alg: none`` and no signature (the suite's ChangeIdTokenToAlgNone)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, key="", algorithm="none")


@dataclass
class BackchannelReceiver:
    """A relying party's back-channel logout endpoint (Back-Channel Logout 1.0 §2.5), on loopback:
    records each request (its content type and form) and answers 200 with no-store (§2.8)."""

    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append((request.content_type, {k: str(v) for k, v in form.items()}))
        self.arrived.set()
        return web.Response(status=200, headers={"Cache-Control": "no-store"})

    async def received(self, count: int = 1) -> list[tuple[str, dict[str, str]]]:
        """The first ``count`` requests, waited for (the OP delivers from a queue, at once)."""
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests[:count]


RECEIVE_TIMEOUT = 10.0  # seconds a back-channel logout may take to arrive
