"""A standard client library registers itself with Tessera and completes a flow (issue 15).

The library is the official MCP Python SDK's OAuth client (``mcp.client.auth.OAuthClientProvider``,
an ``httpx2.Auth``), driven as an MCP client drives it: it calls a protected resource, reads the
401's RFC 9728 challenge and the resource's metadata, which names Tessera as its authorization
server, then Tessera's RFC 8414 metadata; it registers itself at the advertised
``registration_endpoint`` (RFC 7591) with no initial access token, as a public native client with a
loopback redirect URI, which the ``open-native`` policy approves at once; then it runs the code flow
with PKCE (the test plays the browser: login, consent) and retries the resource with the access
token it got. Nothing Tessera-specific is configured in the client: its name, its redirect URI and
that it is a public client (``token_endpoint_auth_method: none``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx2
import pytest
from aiohttp import web
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.registry import Registry
from auth_server.settings import Settings
from auth_server.stores.users import User
from shared.errors import InvalidToken
from shared.jwt_validation import JWKSKeySource, TokenValidator, bearer_token
from tests.support.flow import basic, hidden, query_of, sign_in
from tests.support.servers import PASSWORD, free_port, make_settings
from tests.support.services import Services

METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"  # RFC 9728 §3.1, for the resource /mcp


@dataclass(frozen=True)
class Tessera:
    url: str
    settings: Settings
    registry: Registry


@pytest.fixture
async def tessera(database_url: str, backing: Services) -> AsyncIterator[Tessera]:
    """Tessera on a real loopback port under the ``open-native`` registration policy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    prefix = f"tessera-test-mcp-{uuid.uuid4().hex[:8]}:"
    settings = make_settings(
        database_url,
        backing.redis_url,
        prefix,
        issuer=url,
        registration="open-native",
        # the SDK asks for offline_access whenever the server supports it and the client has the
        # refresh_token grant (MCP SEP-2207), which its default grant types include
        open_scopes="openid profile offline_access photos:read",
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Tessera(url, settings, app[REGISTRY])
    finally:
        await runner.cleanup()


@dataclass
class Resource:
    """A minimal MCP server as far as OAuth goes: a protected resource (RFC 9728) trusting Tessera."""

    url: str
    metadata_requests: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def resource(tessera: Tessera) -> AsyncIterator[Resource]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = Resource(url=f"{base}/mcp")
    # an API registered with Tessera (RFC 8707): the SDK asks for tokens for it by its URL
    await tessera.registry.resources.create(state.url, "MCP server", ("photos:read",))
    keys = JWKSKeySource(issuer=tessera.url)
    validator = TokenValidator(issuer=tessera.url, audience=state.url, keys=keys)

    async def protected(request: web.Request) -> web.Response:
        challenge = f'Bearer resource_metadata="{base}{METADATA_PATH}"'
        try:
            token = bearer_token(request)
            if token is None:
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": challenge})
            claims = await validator.validate(token)
        except InvalidToken:
            raise web.HTTPUnauthorized(
                headers={"WWW-Authenticate": f'{challenge}, error="invalid_token"'}
            ) from None
        state.accepted.append(claims)
        return web.json_response({"hello": claims["sub"]})

    async def metadata(request: web.Request) -> web.Response:
        state.metadata_requests += 1
        return web.json_response(
            {
                "resource": state.url,
                "authorization_servers": [tessera.url],
                "scopes_supported": ["photos:read"],
                "bearer_methods_supported": ["header"],
            }
        )

    app = web.Application()
    app.router.add_get("/mcp", protected)
    app.router.add_get(METADATA_PATH, metadata)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        await runner.cleanup()
        await keys.close()


class MemoryStorage:
    """The SDK's ``TokenStorage``: where a real client would persist its registration and tokens."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Browser:
    """The user's browser, for the SDK's redirect handler: it opens the authorization URL, signs in,
    allows on the consent page and stops at the redirect to the loopback URI (nothing listens
    there), whose query the callback handler hands back to the SDK."""

    def __init__(self, tessera: Tessera, user: User, redirect_uri: str) -> None:
        self.tessera, self.user, self.redirect_uri = tessera, user, redirect_uri
        self.authorization_urls: list[str] = []
        self.callback: dict[str, str] | None = None

    async def open(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        parts = urlsplit(authorization_url)
        assert f"{parts.scheme}://{parts.netloc}" == self.tessera.url, authorization_url
        # unsafe=True: keep the cookies of an IP address host (127.0.0.1)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=self.tessera.url, cookie_jar=jar) as http:
            response = await http.get(f"{parts.path}?{parts.query}", allow_redirects=False)
            assert response.status == 302, await response.text()
            login = response.headers["Location"]
            assert login.startswith("/login"), login
            return_to = query_of(login)["return_to"]
            assert await sign_in(http, self.user.username, PASSWORD, return_to) == 303
            consent = await http.get(return_to, allow_redirects=False)
            page = await consent.text()
            assert consent.status == 200, page
            answer = await http.post(
                "/consent",
                data={
                    "csrf_token": hidden(page, "csrf_token"),
                    "request_id": hidden(page, "request_id"),
                    "consent": "allow",
                },
                allow_redirects=False,
            )
            assert answer.status in (302, 303), await answer.text()
            location = answer.headers["Location"]
            assert location.startswith(f"{self.redirect_uri}?"), location
            self.callback = query_of(location)

    async def returned(self) -> AuthorizationCodeResult:
        assert self.callback is not None, "the browser never reached the redirect URI"
        assert "error" not in self.callback, self.callback
        return AuthorizationCodeResult(
            code=self.callback["code"], state=self.callback.get("state"), iss=self.callback.get("iss")
        )


async def test_the_mcp_sdk_registers_itself_and_completes_the_code_flow(
    tessera: Tessera, resource: Resource, user: User
) -> None:
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    browser = Browser(tessera, user, redirect_uri)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=resource.url,
        # a public native client says so: without token_endpoint_auth_method, RFC 7591 §2 means
        # client_secret_basic, which open-native refuses
        client_metadata=OAuthClientMetadata(
            client_name="An MCP client",
            redirect_uris=[AnyUrl(redirect_uri)],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.returned,
    )
    seen: list[tuple[str, str, int]] = []

    async def record(response: httpx2.Response) -> None:
        seen.append((response.request.method, str(response.request.url), response.status_code))

    async with httpx2.AsyncClient(auth=provider, event_hooks={"response": [record]}) as client:
        answer = await client.get(resource.url)
        assert answer.status_code == 200, (answer.status_code, answer.text, seen)
        assert answer.json() == {"hello": user.subject}

        # the client discovered Tessera through the resource and registered at its endpoint
        assert resource.metadata_requests >= 1
        registration = [(m, u, s) for m, u, s in seen if u == f"{tessera.url}/oauth2/register"]
        assert registration == [("POST", f"{tessera.url}/oauth2/register", 201)], seen
        info = storage.client_info
        assert info is not None and info.client_id
        assert info.token_endpoint_auth_method == "none" and info.client_secret is None

        # ... and Tessera approved it at once: no operator involved
        client_record = await tessera.registry.clients.get(info.client_id)
        assert client_record is not None
        assert client_record.status == "approved"
        assert client_record.registered_via == "dynamic"
        assert list(client_record.redirect_uris) == [redirect_uri]

        # the code flow ran with PKCE and the state, through the browser, against this client
        [authorization_url] = browser.authorization_urls
        asked = query_of(authorization_url)
        assert asked["client_id"] == info.client_id and asked["code_challenge_method"] == "S256"
        assert browser.callback is not None and browser.callback["iss"] == tessera.url

        # the access token is Tessera's, for this user and this client, and Tessera accepts it
        tokens = storage.tokens
        assert tokens is not None and tokens.access_token
        [claims] = resource.accepted
        assert claims["client_id"] == info.client_id and claims["sub"] == user.subject
        # a token for this one API (RFC 8707): its audience and only its scope
        assert claims["aud"] == resource.url and claims["scope"] == "photos:read"
        async with aiohttp.ClientSession() as http:
            bearer = {"Authorization": f"Bearer {tokens.access_token}"}
            async with http.get(f"{tessera.url}/oauth2/userinfo", headers=bearer) as userinfo:
                assert userinfo.status == 401  # not a token for Tessera's own API
            introspector, secret = await tessera.registry.clients.create(
                name="introspector",
                redirect_uris=[],
                grant_types=["client_credentials"],
                scope=[],
                auth_method="client_secret_basic",
                allow_introspection=True,
            )
            assert secret
            async with http.post(
                f"{tessera.url}/oauth2/introspect",
                data={"token": tokens.access_token},
                headers=basic(introspector.client_id, secret),
            ) as introspection:
                assert introspection.status == 200, await introspection.text()
                active = await introspection.json()
        assert active["active"] is True and active["client_id"] == info.client_id

        # the refresh token works too: once the access token has expired, the SDK refreshes it
        # itself (a public client, no secret) instead of registering or asking the user again
        assert tokens.refresh_token
        provider.context.token_expiry_time = 1.0  # (0 would read as "no expiry")
        again = await client.get(resource.url)
        assert again.status_code == 200, (again.status_code, again.text)
        assert storage.tokens is not None and storage.tokens.access_token != tokens.access_token
        assert len(browser.authorization_urls) == 1
        assert len([u for _, u, _ in seen if u == f"{tessera.url}/oauth2/register"]) == 1
        assert resource.accepted[-1]["client_id"] == info.client_id
