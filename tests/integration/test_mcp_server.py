"""The Photo Warehouse as an MCP server (``tessera mcp-server``, issue 16), end to end.

An AI agent built on the official MCP SDK (its Streamable HTTP client and its OAuth client,
``mcp.client.auth.OAuthClientProvider``) is given nothing but the MCP server's URL. It reads the 401's
RFC 9728 challenge, finds Tessera in the server's metadata, registers itself (RFC 7591, under the
``open-native`` policy ``tessera dev`` runs), runs the code flow with PKCE through the login and
consent pages (an HTTP user agent plays the browser) asking for a token for the MCP server alone
(RFC 8707 ``resource``), and calls the tools. The MCP server exchanges the agent's token at Tessera
(RFC 8693) for one addressed to the Photo Warehouse, whose API it calls: the warehouse sees that
exchanged token, never the agent's, and its ``act`` claim names the MCP server.

Everything is real: Tessera, the warehouse and the MCP server on loopback ports, PostgreSQL, Redis.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx2
import pytest
import uvicorn
from aiohttp import web
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from mcp_types import ImageContent, TextContent
from multidict import CIMultiDict
from prometheus_client.parser import text_string_to_metric_families
from pydantic import AnyUrl

from auth_server import dev
from auth_server.app import create_app as create_auth_app
from auth_server.appkeys import REGISTRY
from auth_server.commands import migrate_auth, open_registry
from auth_server.crypto import hash_password
from auth_server.registration import ClientMetadata, register
from auth_server.stores.users import User
from resource_server import mcp_server as mcp_server_module
from resource_server.app import create_app as create_warehouse_app
from resource_server.demo import SAMPLE_PHOTOS, sample_png, seed_photos
from resource_server.mcp_server import create_app as create_mcp_app
from resource_server.routes import SCOPES as WAREHOUSE_SCOPES
from resource_server.settings import McpSettings, ResourceSettings
from resource_server.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE
from shared.dpop import MemoryReplayStore
from shared.jwt_validation import CLAIMS_KEY
from tests.integration.test_registration_library import Browser, MemoryStorage, Tessera
from tests.support.dpop import DPoPKey
from tests.support.flow import basic, query_of
from tests.support.servers import PASSWORD, free_port, make_settings
from tests.support.services import Services
from tests.unit.test_protected_resource import params

JSON_RPC = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'


@pytest.fixture
async def tessera(database_url: str, backing: Services) -> AsyncIterator[Tessera]:
    """Tessera on a real loopback port, letting agents register themselves as ``tessera dev`` does."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        database_url,
        backing.redis_url,
        f"tessera-test-mcp-server-{uuid.uuid4().hex[:8]}:",
        issuer=url,
        registration="open-native",
        # what an agent may register for: photos:read, which the MCP server's metadata names, and
        # offline_access, which the SDK adds when the server supports it (MCP SEP-2207)
        open_scopes="openid profile offline_access photos:read",
    )
    app = create_auth_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Tessera(url, settings, app[REGISTRY])
    finally:
        await runner.cleanup()


@dataclass
class Warehouse:
    """The Photo Warehouse on a loopback port, registered at Tessera as a resource (RFC 8707)."""

    url: str  # its resource identifier: the URL it is called at
    # every request it accepted: the validated claims, and the bearer token it was called with
    accepted: list[tuple[dict[str, Any], str]] = field(default_factory=list)


@pytest.fixture
async def warehouse(tessera: Tessera, database_url: str) -> AsyncIterator[Warehouse]:
    port = free_port()
    state = Warehouse(f"http://127.0.0.1:{port}")
    settings = ResourceSettings(
        issuer=tessera.url,
        database_url=database_url,
        audience=tessera.settings.access_token_audience,
        resource_url=state.url,
        port=port,
    )
    app = create_warehouse_app(settings)

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        """What the warehouse saw: the claims its own validation put on the request."""
        response: web.StreamResponse = await handler(request)
        found = request.get(CLAIMS_KEY)
        if found is not None:
            state.accepted.append((found, request.headers["Authorization"].partition(" ")[2]))
        return response

    app.middlewares.append(record)
    await tessera.registry.resources.create(state.url, "Photo Warehouse API", WAREHOUSE_SCOPES)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class McpServer:
    url: str  # the MCP endpoint, its resource identifier
    client_id: str  # its own client at Tessera, which exchanges tokens
    metadata_url: str


@contextlib.asynccontextmanager
async def serving(settings: McpSettings) -> AsyncIterator[None]:
    """The MCP server under uvicorn, as ``tessera mcp-server`` runs it, in this event loop."""
    config = uvicorn.Config(
        create_mcp_app(settings), host=settings.host, port=settings.port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "the MCP server did not start"
                await asyncio.sleep(0.05)
        yield
    finally:
        server.should_exit = True
        await task


async def mcp_client(tessera: Tessera) -> tuple[str, str]:
    """The MCP server's own confidential client, registered for token exchange (RFC 8693)."""
    client, secret, _ = await register(
        tessera.registry,
        ClientMetadata(
            client_name="Photo Warehouse MCP server",
            redirect_uris=[],
            grant_types=[TOKEN_EXCHANGE],
            scope=["photos:read"],
        ),
    )
    assert secret
    return client.client_id, secret


def mcp_settings(
    tessera: Tessera, warehouse: Warehouse, client_id: str, secret: str, url: str, **changes: Any
) -> McpSettings:
    """An MCP server's settings: its client at Tessera, the warehouse it calls, its public ``url``
    (its own port unless ``changes`` gives another)."""
    port = urlsplit(url).port
    return McpSettings(
        **{
            "issuer": tessera.url,
            "client_id": client_id,
            "client_secret": secret,
            "warehouse_url": warehouse.url,
            "host": "127.0.0.1",
            "port": port,
            "url": url,
            **changes,
        }
    )


@pytest.fixture
async def mcp(tessera: Tessera, warehouse: Warehouse) -> AsyncIterator[McpServer]:
    """The MCP server, registered at Tessera as a resource whose service client is its own client."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    client_id, secret = await mcp_client(tessera)
    await tessera.registry.resources.create(
        url, "Photo Warehouse for AI agents", ("photos:read",), service_client_id=client_id
    )
    settings = mcp_settings(tessera, warehouse, client_id, secret, url)
    async with serving(settings):
        yield McpServer(url, client_id, f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp")


@pytest.fixture
async def user(tessera: Tessera, database_url: str) -> User:
    """A user with the demo's four sample photos in the warehouse."""
    user = await tessera.registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    await seed_photos(database_url, user.subject)
    return user


async def test_an_agent_on_the_mcp_sdk_signs_in_and_reads_photos_through_token_exchange(
    tessera: Tessera, warehouse: Warehouse, mcp: McpServer, user: User
) -> None:
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    browser = Browser(tessera, user, redirect_uri)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=mcp.url,
        client_metadata=OAuthClientMetadata(
            client_name="A photo agent",
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

    async with (
        httpx2.AsyncClient(auth=provider, event_hooks={"response": [record]}) as http,
        Client(streamable_http_client(mcp.url, http_client=http)) as agent,
    ):
        tools = {tool.name: tool for tool in (await agent.list_tools()).tools}
        assert set(tools) == {"list_photos", "describe_photo", "fetch_photo"}
        assert all(tool.annotations and tool.annotations.read_only_hint for tool in tools.values())

        first = await agent.call_tool("list_photos", {"limit": 3})
        assert not first.is_error, first.content
        assert first.structured_content is not None
        page = first.structured_content
        assert len(page["photos"]) == 3 and page["next_cursor"]
        rest = await agent.call_tool("list_photos", {"limit": 3, "cursor": page["next_cursor"]})
        assert rest.structured_content is not None and not rest.is_error
        photos = page["photos"] + rest.structured_content["photos"]
        assert rest.structured_content.get("next_cursor") is None
        assert sorted(p["title"] for p in photos) == sorted(title for title, _ in SAMPLE_PHOTOS)

        harbour = next(p for p in photos if p["title"] == "Xiamen harbour")
        described = await agent.call_tool("describe_photo", {"photo_id": harbour["id"]})
        assert described.structured_content == harbour

        fetched = await agent.call_tool("fetch_photo", {"photo_id": harbour["id"]})
        assert not fetched.is_error, fetched.content
        [caption] = [c for c in fetched.content if isinstance(c, TextContent)]
        [image] = [c for c in fetched.content if isinstance(c, ImageContent)]
        assert "Xiamen harbour" in caption.text and image.mime_type == "image/png"
        assert base64.b64decode(image.data) == sample_png(dict(SAMPLE_PHOTOS)["Xiamen harbour"])

        missing = await agent.call_tool("describe_photo", {"photo_id": str(uuid.uuid4())})
        assert missing.is_error and "No such photo" in str(missing.content)
        walking = await agent.call_tool("fetch_photo", {"photo_id": "../../api/stats"})
        assert walking.is_error and "photo ids are UUIDs" in str(walking.content)  # never a path

    # the agent found Tessera through the MCP server's 401 and its metadata, registered, and asked
    # for a token for the MCP server alone (RFC 8707)
    assert ("POST", f"{tessera.url}/oauth2/register", 201) in seen
    [authorization_url] = browser.authorization_urls
    assert query_of(authorization_url)["resource"] == mcp.url
    tokens, info = storage.tokens, storage.client_info
    assert tokens is not None and info is not None
    agent_claims = await tessera.registry.access_tokens.verify(tokens.access_token, audience=None)
    assert agent_claims is not None
    assert agent_claims["aud"] == mcp.url and agent_claims["client_id"] == info.client_id
    assert agent_claims["sub"] == user.subject

    # the warehouse saw only exchanged tokens: addressed to it, for the same user, with act naming
    # the MCP server; never the agent's token
    assert warehouse.accepted
    for claims, bearer in warehouse.accepted:
        assert bearer != tokens.access_token
        assert claims["aud"] == warehouse.url
        assert claims["sub"] == user.subject
        assert claims["act"] == {"sub": mcp.client_id}
        assert set(claims["scope"].split()) == {"photos:read"}
    # one exchange served every call: the exchanged token is cached per agent token
    assert len({claims["jti"] for claims, _ in warehouse.accepted}) == 1


async def test_without_a_token_the_challenge_points_at_the_metadata(mcp: McpServer, tessera: Tessera) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(mcp.url, data=PING, headers=JSON_RPC) as refused:
            assert refused.status == 401
            challenge = params(refused.headers["WWW-Authenticate"])
        assert "error" not in challenge  # RFC 6750 §3.1: no credentials, no error code
        assert challenge["resource_metadata"] == mcp.metadata_url
        async with http.get(challenge["resource_metadata"]) as answer:
            assert answer.status == 200
            document = await answer.json()
    # RFC 9728: exactly the URL the agent calls, Tessera, and the one scope the server needs
    assert document["resource"] == mcp.url
    assert document["authorization_servers"] == [tessera.url]
    assert document["scopes_supported"] == ["photos:read"]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "RS256", "PS256"]


async def _password_token(tessera: Tessera, user: User, *, key: DPoPKey | None = None, **form: str) -> str:
    """A token for ``user`` from the password grant (``resource``, ``scope`` in ``form``); bound to
    ``key`` (RFC 9449 §5) when one is given."""
    client, secret, _ = await register(
        tessera.registry,
        ClientMetadata(
            client_name="first-party app",
            redirect_uris=[],
            grant_types=["password"],
            scope=["photos:read", "profile"],
        ),
    )
    assert secret
    body = {"grant_type": "password", "username": user.username, "password": PASSWORD, **form}
    headers = basic(client.client_id, secret)
    if key is not None:
        headers["DPoP"] = key.proof("POST", f"{tessera.url}/oauth2/token")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{tessera.url}/oauth2/token", data=body, headers=headers) as answer,
    ):
        issued = await answer.json()
        assert answer.status == 200, issued
        assert issued["token_type"] == ("Bearer" if key is None else "DPoP")
    token: str = issued["access_token"]
    return token


async def test_a_token_for_another_api_is_refused_with_a_challenge(
    tessera: Tessera, warehouse: Warehouse, mcp: McpServer, user: User
) -> None:
    for_warehouse = await _password_token(tessera, user, scope="photos:read", resource=warehouse.url)
    default_audience = await _password_token(tessera, user, scope="photos:read")
    async with aiohttp.ClientSession() as http:
        # the warehouse's own token is good there ...
        bearer = {"Authorization": f"Bearer {for_warehouse}"}
        async with http.get(f"{warehouse.url}/api/photos", headers=bearer) as answer:
            assert answer.status == 200
        # ... and refused by the MCP server, as is a token for the default audience
        for token in (for_warehouse, default_audience):
            headers = {**JSON_RPC, "Authorization": f"Bearer {token}"}
            async with http.post(mcp.url, data=PING, headers=headers) as refused:
                assert refused.status == 401
                challenge = params(refused.headers["WWW-Authenticate"])
            assert challenge["error"] == "invalid_token"
            assert challenge["resource_metadata"] == mcp.metadata_url


async def test_a_token_without_photos_read_gets_403_insufficient_scope(
    tessera: Tessera, mcp: McpServer, user: User
) -> None:
    # Tessera issues a token for the MCP server only with a scope of its (photos:read); one
    # without it, signed by Tessera, must still be refused with the scope the server needs
    issuer = tessera.registry.access_tokens
    token = issuer.sign(
        issuer.prepare(), subject=user.subject, client_id=mcp.client_id, scope=("profile",), audience=mcp.url
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(mcp.url, data=PING, headers={**JSON_RPC, "Authorization": f"Bearer {token}"}) as refused,
    ):
        assert refused.status == 403
        challenge = params(refused.headers["WWW-Authenticate"])
    assert challenge["error"] == "insufficient_scope"
    assert challenge["resource_metadata"] == mcp.metadata_url


class DPoPAuth(httpx2.Auth):
    """An agent's HTTP client that holds a DPoP key: every request carries the token with the
    ``DPoP`` scheme and a fresh proof for its method and URL (RFC 9449 §7)."""

    def __init__(self, key: DPoPKey, token: str) -> None:
        self.key, self.token = key, token

    def auth_flow(self, request: httpx2.Request) -> Any:
        url = str(request.url.copy_with(query=None, fragment=None))
        request.headers["Authorization"] = f"DPoP {self.token}"
        request.headers["DPoP"] = self.key.proof(request.method, url, access_token=self.token)
        yield request


async def test_an_agent_with_a_dpop_bound_token_reads_photos_and_a_copy_without_the_key_is_refused(
    tessera: Tessera, warehouse: Warehouse, mcp: McpServer, user: User
) -> None:
    """RFC 9449 at the MCP server: the official SDK's client sends a DPoP-bound token with a proof
    on every request and calls the tools (the server exchanges the token as it does a bearer one);
    the same token as a bearer token, a replayed proof, a proof by another key or for another URL
    are refused with DPoP challenges that still point at the metadata."""
    key = DPoPKey()
    bound = await _password_token(tessera, user, key=key, scope="photos:read", resource=mcp.url)
    http = httpx2.AsyncClient(auth=DPoPAuth(key, bound))
    async with http, Client(streamable_http_client(mcp.url, http_client=http)) as agent:
        listed = await agent.call_tool("list_photos", {})
    assert not listed.is_error, listed.content
    assert len(listed.structured_content["photos"]) == len(SAMPLE_PHOTOS)
    assert warehouse.accepted and all(
        claims["act"] == {"sub": mcp.client_id} for claims, _ in warehouse.accepted
    )

    async def ping(headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(mcp.url, data=PING, headers={**JSON_RPC, **headers}) as answer,
        ):
            return answer.status, dict(answer.headers), await answer.json()

    proof = key.proof("POST", mcp.url, access_token=bound)
    status, _, _ = await ping({"Authorization": f"DPoP {bound}", "DPoP": proof})
    assert status == 200
    status, headers, body = await ping({"Authorization": f"DPoP {bound}", "DPoP": proof})
    assert status == 401 and body["error"] == "invalid_dpop_proof"
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ") and "algs=" in challenge
    assert f'resource_metadata="{mcp.metadata_url}"' in challenge
    # the token without its key: as a bearer token, or with a proof by another key
    status, headers, body = await ping({"Authorization": f"Bearer {bound}"})
    assert status == 401 and body["error"] == "invalid_token" and "DPoP" in body["error_description"]
    assert f'resource_metadata="{mcp.metadata_url}"' in headers["WWW-Authenticate"]
    thief = DPoPKey()
    for forged in (
        thief.proof("POST", mcp.url, access_token=bound),
        key.proof("POST", mcp.url.replace("/mcp", "/other"), access_token=bound),
        key.proof("GET", mcp.url, access_token=bound),
        key.proof("POST", mcp.url),  # no ath
    ):
        status, headers, body = await ping({"Authorization": f"DPoP {bound}", "DPoP": forged})
        assert status == 401 and body["error"] in ("invalid_dpop_proof", "invalid_token"), body
        assert headers["WWW-Authenticate"].startswith("DPoP ")
    # two proofs in one request (RFC 9449 §4.3 step 1)
    async with aiohttp.ClientSession() as session:
        twice = CIMultiDict(
            [
                ("Authorization", f"DPoP {bound}"),
                ("DPoP", key.proof("POST", mcp.url, access_token=bound)),
                ("DPoP", key.proof("POST", mcp.url, access_token=bound)),
                *JSON_RPC.items(),
            ]
        )
        async with session.post(mcp.url, data=PING, headers=twice) as answer:
            assert answer.status == 401 and (await answer.json())["error"] == "invalid_dpop_proof"


async def test_a_proof_is_good_once_across_replicas_of_the_mcp_server(
    tessera: Tessera, warehouse: Warehouse, mcp: McpServer, user: User, backing: Services
) -> None:
    """Two replicas behind one public URL share the proofs' ``jti`` in Redis: a proof one of them
    accepted is refused by the other. Without Redis configured, a replica answers DPoP requests
    from its own memory; with Redis unreachable, DPoP requests get 503 while bearer ones go on."""
    key = DPoPKey()
    bound = await _password_token(tessera, user, key=key, scope="photos:read", resource=mcp.url)
    client_id, secret = await mcp_client(tessera)

    def replica(redis_url: str) -> McpSettings:
        # each on a port of its own, both answering for the one public URL
        return mcp_settings(
            tessera, warehouse, client_id, secret, mcp.url, port=free_port(), redis_url=redis_url
        )

    def local(settings: McpSettings) -> str:
        return f"http://127.0.0.1:{settings.port}/mcp"

    first, second = replica(backing.redis_url), replica(backing.redis_url)
    down = replica("redis://127.0.0.1:1/0")
    proof = key.proof("POST", mcp.url, access_token=bound)
    sent = {**JSON_RPC, "Authorization": f"DPoP {bound}", "DPoP": proof}
    async with serving(first), serving(second), serving(down), aiohttp.ClientSession() as http:
        async with http.post(local(first), data=PING, headers=sent) as answer:
            assert answer.status == 200
        async with http.post(local(second), data=PING, headers=sent) as answer:
            assert answer.status == 401 and (await answer.json())["error"] == "invalid_dpop_proof"
        fresh = {**sent, "DPoP": key.proof("POST", mcp.url, access_token=bound)}
        async with http.post(local(down), data=PING, headers=fresh) as answer:
            assert answer.status == 503 and (await answer.json())["error"] == "temporarily_unavailable"
            assert answer.headers["Retry-After"]
        bearer = await _password_token(tessera, user, scope="photos:read", resource=mcp.url)
        headers = {**JSON_RPC, "Authorization": f"Bearer {bearer}"}
        async with http.post(local(down), data=PING, headers=headers) as answer:
            assert answer.status == 200


async def test_a_full_replay_store_is_a_503_not_a_500(
    tessera: Tessera, warehouse: Warehouse, mcp: McpServer, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Redis, proofs' ``jti`` are kept in the process, in a bounded store that refuses new
    proofs while full (it never forgets one early): the agent is told to come back, as a 503
    ``temporarily_unavailable`` with ``Retry-After``."""
    client_id, secret = await mcp_client(tessera)
    settings = mcp_settings(tessera, warehouse, client_id, secret, mcp.url, port=free_port())
    monkeypatch.setattr(mcp_server_module, "MemoryReplayStore", lambda: MemoryReplayStore(max_entries=2))
    key = DPoPKey()
    bound = await _password_token(tessera, user, key=key, scope="photos:read", resource=mcp.url)
    statuses = []
    async with serving(settings), aiohttp.ClientSession() as http:
        for _ in range(3):
            headers = {
                **JSON_RPC,
                "Authorization": f"DPoP {bound}",
                "DPoP": key.proof("POST", mcp.url, access_token=bound),
            }
            async with http.post(
                f"http://127.0.0.1:{settings.port}/mcp", data=PING, headers=headers
            ) as answer:
                statuses.append(answer.status)
                body = await answer.json()
                retry = answer.headers.get("Retry-After")
    assert statuses == [200, 200, 503]
    assert body["error"] == "temporarily_unavailable" and retry


async def test_a_refused_exchange_is_a_tool_error_naming_why(
    tessera: Tessera, warehouse: Warehouse, user: User
) -> None:
    """An MCP server whose client Tessera does not know gets ``invalid_client``: the agent reads a
    tool error, and the warehouse is never called."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    client_id, _ = await mcp_client(tessera)
    await tessera.registry.resources.create(url, "MCP", ("photos:read",), service_client_id=client_id)
    settings = mcp_settings(tessera, warehouse, client_id, "not-its-secret", url)
    agent_token = await _password_token(tessera, user, scope="photos:read", resource=url)
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {agent_token}"})
    async with (
        serving(settings),
        http,
        Client(streamable_http_client(url, http_client=http)) as agent,
    ):
        result = await agent.call_tool("list_photos", {})
    assert result.is_error
    assert "invalid_client" in str(result.content)
    assert warehouse.accepted == []


async def test_tessera_dev_seeds_both_apis_and_the_mcp_servers_client(
    empty_database: str, backing: Services, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(empty_database, backing.redis_url, redis_prefix, dev_dir=tmp_path)
    await migrate_auth(empty_database)
    async with open_registry(settings) as registry:
        demo, _ = await dev.seed(settings, registry, 9123, warehouse_port=9124, mcp_port=9125)
        mcp_server = await registry.clients.load(demo.mcp_id)
        assert mcp_server is not None
        assert mcp_server.grant_types == (TOKEN_EXCHANGE,) and mcp_server.scope == ("photos:read",)
        assert mcp_server.token_endpoint_auth_method == "client_secret_basic"
        warehouse = await registry.resources.get("http://localhost:9124")
        assert warehouse is not None and warehouse.service_client_id is None
        assert set(warehouse.scopes) == set(WAREHOUSE_SCOPES)
        mcp = await registry.resources.get("http://localhost:9125/mcp")
        assert mcp is not None and mcp.scopes == ("photos:read",)
        assert mcp.service_client_id == demo.mcp_id  # the one client that may exchange its tokens

        # a later run keeps all of it
        again, _ = await dev.seed(settings, registry, 9123, warehouse_port=9124, mcp_port=9125)
        assert again == demo
        assert await registry.resources.get("http://localhost:9125/mcp") == mcp

        # what an earlier version left (no MCP client, its credentials without one): every demo
        # client anew, and the MCP server's resource names the new one
        assert await registry.clients.delete(demo.mcp_id)
        saved = tmp_path / "demo-clients.json"
        earlier = {k: v for k, v in json.loads(saved.read_text()).items() if not k.startswith("mcp_")}
        saved.write_text(json.dumps(earlier))
        renewed, _ = await dev.seed(settings, registry, 9123, warehouse_port=9124, mcp_port=9125)
        assert renewed.mcp_id != demo.mcp_id and renewed.printer_id != demo.printer_id
        assert await registry.clients.load(demo.printer_id) is None
        mcp = await registry.resources.get("http://localhost:9125/mcp")
        assert mcp is not None and mcp.service_client_id == renewed.mcp_id


def test_without_the_mcp_extra_the_command_says_what_to_install() -> None:
    """``tessera mcp-server`` on an installation without the ``mcp`` package: one line, exit 2."""
    hide_the_sdk = (
        "import sys; sys.modules['mcp'] = None; from shared.cli import main; sys.exit(main(['mcp-server']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_the_sdk], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr == "tessera: the MCP server needs the mcp package: pip install 'tessera[mcp]'\n"


async def test_tessera_mcp_server_serves_metrics_on_a_port_of_its_own(
    tessera: Tessera, warehouse: Warehouse, tmp_path: Path
) -> None:
    """``tessera mcp-server --metrics-port``: requests counted by route and status, refusals by
    OAuth error, as the other servers count theirs; never on the public port."""
    client_id, secret = await mcp_client(tessera)
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env |= {
        "TESSERA_ISSUER": tessera.url,
        "TESSERA_MCP_CLIENT_ID": client_id,
        "TESSERA_MCP_CLIENT_SECRET": secret,
        "TESSERA_MCP_WAREHOUSE_URL": warehouse.url,
        "TESSERA_MCP_URL": url,
        "TESSERA_MCP_PORT": str(port),
    }
    output = tmp_path / "mcp-server.log"
    with output.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "auth_server.cli", "mcp-server", "--metrics-port", str(metrics_port)),
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(30):
                while True:
                    assert process.returncode is None, output.read_text()
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as ready:
                            if ready.status == 200:
                                break
                    await asyncio.sleep(0.1)
            async with http.post(url, data=PING, headers=JSON_RPC) as refused:
                assert refused.status == 401
            async with http.get(f"http://127.0.0.1:{port}/metrics") as public:
                assert public.status == 404  # the public port has no /metrics
            for made_up in range(20):  # uvicorn takes any method token: counted as "other", once
                async with http.request(f"M{made_up}", f"http://127.0.0.1:{port}/healthz"):
                    pass
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as scraped:
                assert scraped.status == 200
                samples = {
                    (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                    for family in text_string_to_metric_families(await scraped.text())
                    for sample in family.samples
                }
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    requests = {
        labels: value for (name, labels), value in samples.items() if name == "tessera_http_requests_total"
    }
    assert requests[(("method", "POST"), ("route", "/mcp"), ("service", "mcp"), ("status", "401"))] == 1
    assert samples[("tessera_oauth_errors_total", (("error", "invalid_token"),))] == 1
    # the probes under their own route; any other path as "unmatched", never a client's words
    assert any(("route", "/readyz") in labels for labels in requests)
    assert requests[(("method", "GET"), ("route", "unmatched"), ("service", "mcp"), ("status", "404"))] == 1
    odd = [labels for labels in requests if dict(labels)["method"] not in {"GET", "POST"}]
    assert len(odd) == 1 and ("method", "other") in odd[0] and requests[odd[0]] == 20
    assert "metrics on http://127.0.0.1:" in output.read_text()
