"""Outbound fetches behind one guard (``shared.fetch``): no SSRF through a URL someone else chose.

A private_key_jwt client names the URL its keys are fetched from (RFC 7523; RFC 7591 §2,
``jwks_uri``). With a production (https) issuer, no ``jwks_uri`` may make Tessera connect to a
loopback, private or link-local address, whether the URL names it literally or by a name that
resolves there: the addresses checked are the ones connected to, so DNS rebinding between check and
connect does not work. Registration refuses such URLs early. Answers are bounded in size and time,
and redirects are not followed. The resource server's ``JWKSKeySource`` fetches through the same
guard, with private targets allowed (its operator configured the issuer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpServer

from auth_server.app import create_app
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.registration import RegistrationError, validate_registration
from auth_server.registry import Registry
from shared.jwt_validation import JWKSKeySource
from tests.integration.test_private_key_jwt import (
    KNOWN_SCOPES,
    SCOPE,
    Key,
    assert_invalid_client,
    assert_token_for,
    claims,
    client_credentials,
    new_key,
)
from tests.support.servers import TEST_KEK, make_settings
from tests.support.services import Services

PRODUCTION_ISSUER = "https://auth.example.com"
DEVELOPMENT_ISSUER = "http://localhost:8000"  # the issuer of the shared ``http`` fixture


# ---------------------------------------------------------------------------------------------
# a listener on loopback that would serve keys to anyone who reached it
# ---------------------------------------------------------------------------------------------


@dataclass
class Listener:
    """A TCP listener on 127.0.0.1: counts connections, answers an HTTP GET with ``body``.

    With ``hang``, it accepts and reads but never answers (until the test ends)."""

    port: int = 0
    body: bytes = b""
    hang: bool = False
    connections: int = 0
    requests: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    state = Listener()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            head = b""  # not HTTP (a TLS ClientHello), or nothing
        if head.startswith(b"GET "):
            state.requests += 1
            if state.hang:
                await state.release.wait()
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(state.body)}\r\n\r\n".encode()
                    + state.body
                )
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.release.set()
        server.close()
        await server.wait_closed()


def serve_keys(listener: Listener, *keys: Key) -> None:
    listener.body = json.dumps({"keys": [k.jwk for k in keys]}).encode()


# ---------------------------------------------------------------------------------------------
# the authorization server with a production issuer
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def production(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    database_url: str,
    backing: Services,
    redis_prefix: str,
) -> TestClient:
    settings = make_settings(database_url, backing.redis_url, redis_prefix, issuer=PRODUCTION_ISSUER)
    assert not settings.development
    return await aiohttp_client(create_app(settings))


def registry_of(http: TestClient) -> Registry:
    app: web.Application | None = http.app
    assert app is not None
    return app[REGISTRY]


async def stored_client(registry: Registry, jwks_uri: str) -> Client:
    """A private_key_jwt client stored as it is, without the registration checks: one registered
    before them, or whose host's DNS answer changed since. The fetch-time guard must hold alone."""
    client, secret = await registry.clients.create(
        name="Partner",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=[SCOPE],
        auth_method="private_key_jwt",
        jwks_uri=jwks_uri,
    )
    assert secret is None
    return client


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/jwks.json",
        "https://127.0.0.1:{port}/jwks.json",
        "http://localhost:{port}/jwks.json",  # a name that resolves to 127.0.0.1
        "https://localhost:{port}/jwks.json",
        "https://[::ffff:127.0.0.1]:{port}/jwks.json",  # loopback, IPv4-mapped
    ],
)
async def test_jwks_uri_on_loopback_is_never_connected_to(
    production: TestClient, listener: Listener, template: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_key("ES256")
    serve_keys(listener, key)
    registry = registry_of(production)
    client = await stored_client(registry, template.format(port=listener.port))
    with caplog.at_level(logging.WARNING, logger="tessera.client_keys"):
        response = await client_credentials(
            production, key.sign(claims(client.client_id, aud=PRODUCTION_ISSUER))
        )
        await assert_invalid_client(response)
    assert (listener.connections, listener.requests) == (0, 0)
    assert any("refused to fetch" in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud metadata service
        ("https://10.20.30.40/jwks.json", "private"),
        ("https://172.16.0.1/jwks.json", "private"),
        ("https://192.168.1.1/jwks.json", "private"),
        ("https://100.64.0.1/jwks.json", "shared"),  # carrier-grade NAT
        ("https://[fd00::1]/jwks.json", "private"),  # unique local
        ("https://[fe80::1]/jwks.json", "link-local"),
        ("https://0.0.0.0/jwks.json", "unspecified"),
        ("https://[::ffff:169.254.169.254]/jwks.json", "link-local"),
        ("https://2130706433/jwks.json", "not a canonical IP address"),  # 127.0.0.1 as one number
    ],
)
async def test_jwks_uri_in_a_refused_range_is_invalid_client(
    production: TestClient, uri: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_key("ES256")
    registry = registry_of(production)
    client = await stored_client(registry, uri)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tessera.client_keys"):
        response = await client_credentials(
            production, key.sign(claims(client.client_id, aud=PRODUCTION_ISSUER))
        )
        await assert_invalid_client(response)
    refusals = [r.getMessage() for r in caplog.records if "refused to fetch" in r.getMessage()]
    assert refusals and kind in refusals[0], caplog.text
    assert time.monotonic() - started < 2  # refused before any connection attempt, not timed out


async def test_plain_http_jwks_uri_is_refused_for_a_production_issuer(
    production: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    key = new_key("ES256")
    client = await stored_client(registry_of(production), "http://partner.example/jwks.json")
    with caplog.at_level(logging.WARNING, logger="tessera.client_keys"):
        await assert_invalid_client(
            await client_credentials(production, key.sign(claims(client.client_id, aud=PRODUCTION_ISSUER)))
        )
    assert "only https URLs are fetched" in caplog.text


async def test_a_development_issuer_still_fetches_from_loopback(
    http: TestClient, registry: Registry, listener: Listener
) -> None:
    """``tessera dev`` and the test suite use http://localhost issuers with keys on 127.0.0.1."""
    key = new_key("ES256")
    serve_keys(listener, key)
    client = await stored_client(registry, f"http://127.0.0.1:{listener.port}/jwks.json")
    response = await client_credentials(http, key.sign(claims(client.client_id, aud=DEVELOPMENT_ISSUER)))
    await assert_token_for(response, registry, client)
    assert listener.requests == 1


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------


def _register(jwks_uri: str, *, development: bool) -> None:
    validate_registration(
        name="Partner",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=[SCOPE],
        auth_method="private_key_jwt",
        known_scopes=KNOWN_SCOPES,
        jwks_uri=jwks_uri,
        development=development,
    )


@pytest.mark.parametrize(
    "uri",
    [
        "https://169.254.169.254/",
        "http://127.0.0.1:6379/",
        "http://localhost:2375/",
        "https://127.0.0.1/jwks.json",
        "https://[::1]/jwks.json",
        "https://localhost/jwks.json",
        "https://keys.localhost/jwks.json",
        "https://10.1.2.3/jwks.json",
        "https://192.168.0.10/jwks.json",
        "https://100.100.100.100/jwks.json",
        "https://[fd12:3456::1]/jwks.json",
        "https://[::ffff:10.0.0.1]/jwks.json",
        "https://224.0.0.1/jwks.json",
        "https://0x7f.1/jwks.json",
        "http://partner.example/jwks.json",
    ],
)
def test_registration_refuses_non_public_jwks_uris_for_a_production_issuer(uri: str) -> None:
    with pytest.raises(RegistrationError, match="jwks_uri"):
        _register(uri, development=False)


def test_registration_rules_for_a_development_issuer() -> None:
    for uri in (
        "http://127.0.0.1:8080/jwks.json",
        "http://localhost:8080/jwks.json",
        "http://[::1]:8080/jwks.json",
        "https://10.1.2.3/jwks.json",
        "https://partner.example/jwks.json",
    ):
        _register(uri, development=True)
    # never a place for keys, development or not
    for uri in (
        "https://169.254.169.254/",
        "http://169.254.169.254/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
    ):
        with pytest.raises(RegistrationError, match="jwks_uri"):
            _register(uri, development=True)


def test_registration_accepts_public_jwks_uris_for_a_production_issuer() -> None:
    _register("https://partner.example/.well-known/jwks.json", development=False)
    _register("https://93.184.215.14/jwks.json", development=False)


def _tessera(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auth_server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("uri", ["http://127.0.0.1:6379/", "https://169.254.169.254/"])
def test_cli_refuses_internal_jwks_uris_for_a_production_issuer(
    database_url: str, backing: Services, redis_prefix: str, uri: str
) -> None:
    env = {
        **os.environ,
        "TESSERA_ISSUER": PRODUCTION_ISSUER,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": backing.redis_url,
        "TESSERA_KEY_ENCRYPTION_KEY": TEST_KEK,
        "TESSERA_REDIS_PREFIX": redis_prefix,
    }
    result = _tessera(
        env,
        *("client", "create", "--name", "Internal", "--grant-type", "client_credentials"),
        *("--scope", SCOPE, "--jwks-uri", uri, "--json"),
    )
    assert result.returncode != 0, result.stdout
    assert "jwks_uri" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# the resource server's JWKSKeySource: private targets allowed, the other limits still hold
# ---------------------------------------------------------------------------------------------


@dataclass
class Issuer:
    url: str = ""
    jwks: bytes = b""
    jwks_path: str = "/jwks"
    jwks_hits: int = 0


async def start_issuer(aiohttp_server: AiohttpServer, routes: dict[str, web.Response | None]) -> Issuer:
    """An issuer's RFC 8414 metadata and JWKS; ``routes`` adds fixed answers (``None``: hang)."""
    issuer = Issuer()
    release = asyncio.Event()

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response({"issuer": issuer.url, "jwks_uri": f"{issuer.url}{issuer.jwks_path}"})

    async def jwks(request: web.Request) -> web.Response:
        issuer.jwks_hits += 1
        return web.Response(body=issuer.jwks, content_type="application/json")

    def fixed(answer: web.Response | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            if answer is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(release.wait(), 10)
                return web.Response(status=504)
            return answer

        return handler

    app = web.Application()
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    app.router.add_get("/jwks", jwks)
    for path, answer in routes.items():
        app.router.add_get(path, fixed(answer))
    server = await aiohttp_server(app)
    issuer.url = f"http://127.0.0.1:{server.port}"
    return issuer


async def test_key_source_refuses_an_oversized_jwks(aiohttp_server: AiohttpServer) -> None:
    key = new_key("ES256")
    issuer = await start_issuer(aiohttp_server, {})
    padding = [{"kty": "none", "pad": "x" * 1000} for _ in range(600)]  # about 600 KB
    issuer.jwks = json.dumps({"keys": [key.jwk, *padding]}).encode()
    source = JWKSKeySource(issuer.url, timeout=5.0)
    try:
        await source.refresh()
        assert issuer.jwks_hits == 1
        assert await source.key(key.kid) is None
        with pytest.raises(RuntimeError):
            await source.ready()
        # the same key set, small enough, is used
        issuer.jwks = json.dumps({"keys": [key.jwk]}).encode()
        fresh = JWKSKeySource(issuer.url, timeout=5.0)
        try:
            assert await fresh.key(key.kid) is not None
        finally:
            await fresh.close()
    finally:
        await source.close()


async def test_key_source_does_not_follow_a_redirect(aiohttp_server: AiohttpServer) -> None:
    key = new_key("ES256")
    elsewhere = await start_issuer(aiohttp_server, {})
    elsewhere.jwks = json.dumps({"keys": [key.jwk]}).encode()
    issuer = await start_issuer(
        aiohttp_server, {"/moved": web.Response(status=302, headers={"Location": f"{elsewhere.url}/jwks"})}
    )
    issuer.jwks_path = "/moved"
    source = JWKSKeySource(issuer.url, timeout=5.0)
    try:
        assert await source.key(key.kid) is None
        assert elsewhere.jwks_hits == 0
    finally:
        await source.close()


async def test_key_source_gives_up_on_a_hanging_issuer(aiohttp_server: AiohttpServer) -> None:
    issuer = await start_issuer(aiohttp_server, {"/hang": None})
    issuer.jwks_path = "/hang"
    source = JWKSKeySource(issuer.url, timeout=0.5)
    try:
        started = time.monotonic()
        await source.refresh()
        assert time.monotonic() - started < 3
        with pytest.raises(RuntimeError):
            await source.ready()
    finally:
        await source.close()


# ---------------------------------------------------------------------------------------------
# shared.fetch itself: the API later features (metadata documents, sector identifiers) reuse
# ---------------------------------------------------------------------------------------------


class FakeResolver(AbstractResolver):
    """Answers names from a table, as a DNS server under someone else's control would."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass


async def test_fetcher_connects_only_to_the_addresses_it_vetted(listener: Listener) -> None:
    from shared.fetch import Fetcher, FetchRefused

    listener.body = b'{"keys": []}'
    names = FakeResolver({"keys.partner.test": ["127.0.0.1"]})
    # private allowed: the connection goes to the resolver's answer (the system knows no such name)
    async with Fetcher(allow_private=True, resolver=names) as fetcher:
        assert await fetcher.fetch_json(f"http://keys.partner.test:{listener.port}/jwks.json") == {"keys": []}
    assert (listener.requests, names.asked) == (1, ["keys.partner.test"])
    # public only: the same answer is refused, and nothing is connected to
    async with Fetcher(resolver=names) as fetcher:
        with pytest.raises(FetchRefused, match=r"keys\.partner\.test resolves to 127\.0\.0\.1, a loopback"):
            await fetcher.fetch_json(f"https://keys.partner.test:{listener.port}/jwks.json")
    assert listener.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        ["93.184.215.14", "127.0.0.1"],  # one bad address spoils the answer
        ["10.0.0.7"],
        ["::ffff:192.168.0.1"],
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
        ["fe80::1"],
    ],
)
async def test_fetcher_refuses_a_name_resolving_to_a_refused_address(answer: list[str]) -> None:
    from shared.fetch import Fetcher, FetchRefused

    async with Fetcher(resolver=FakeResolver({"rebound.partner.test": answer})) as fetcher:
        with pytest.raises(FetchRefused, match=r"rebound\.partner\.test resolves to"):
            await fetcher.fetch_json("https://rebound.partner.test/jwks.json")


async def test_fetcher_stops_reading_past_the_size_limit(aiohttp_server: AiohttpServer) -> None:
    from shared.fetch import Fetcher, FetchError

    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)  # chunked: no Content-Length to refuse up front
        with contextlib.suppress(ConnectionError, RuntimeError):
            while sent < 1024**3:
                await response.write(b" " * 65536)
                sent += 65536
        return response

    async def large(request: web.Request) -> web.Response:
        return web.Response(body=b" " * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/large", large)
    server = await aiohttp_server(app)
    async with Fetcher(allow_private=True, max_bytes=10_000, timeout=10) as fetcher:
        with pytest.raises(FetchError, match="over the 10000-byte limit"):
            await fetcher.fetch(f"http://127.0.0.1:{server.port}/large")
        with pytest.raises(FetchError, match="over the 10000-byte limit"):
            await fetcher.fetch(f"http://127.0.0.1:{server.port}/endless")
    await asyncio.sleep(0.1)
    assert sent < 64 * 1024**2  # it stopped reading: the server could not go on sending


async def test_fetcher_times_out(listener: Listener) -> None:
    from shared.fetch import Fetcher, FetchError

    listener.hang = True
    async with Fetcher(allow_private=True, timeout=0.5) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"no answer within 0\.5 s"):
            await fetcher.fetch(f"http://127.0.0.1:{listener.port}/jwks.json")
        assert time.monotonic() - started < 2
    assert listener.requests == 1


async def test_fetcher_redirects(aiohttp_server: AiohttpServer, listener: Listener) -> None:
    from shared.fetch import Fetcher, FetchError, FetchRefused

    listener.body = b"{}"
    target = f"http://127.0.0.1:{listener.port}/jwks.json"

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/moved", moved)
    server = await aiohttp_server(app)
    moved_to = f"http://127.0.0.1:{server.port}/moved?to="
    # by default, not followed at all
    async with Fetcher(allow_private=True) as fetcher:
        with pytest.raises(FetchError, match="redirects are not followed"):
            await fetcher.fetch_json(moved_to + target)
    assert listener.connections == 0
    # when asked to follow, every hop is checked again: never to link-local, mapped or not
    async with Fetcher(allow_private=True, max_redirects=2) as fetcher:
        assert await fetcher.fetch_json(moved_to + target) == {}
        for bad in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:a9fe:a9fe]/"):
            with pytest.raises(FetchRefused, match="link-local"):
                await fetcher.fetch_json(moved_to + bad)
        with pytest.raises(FetchError, match="more than 2"):
            await fetcher.fetch_json(moved_to + moved_to + moved_to + target)
    # and without private targets, a redirect to one is refused (the first hop is refused here too:
    # the check runs on every URL, first or not)
    async with Fetcher(max_redirects=2) as fetcher:
        with pytest.raises(FetchRefused):
            await fetcher.fetch_json(moved_to + target)
    assert listener.requests == 1


@pytest.mark.parametrize(
    ("address", "public_only", "private_allowed"),
    [
        ("93.184.215.14", True, True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True, True),
        ("::ffff:93.184.215.14", True, True),
        ("64:ff9b::5db8:d70e", True, True),  # NAT64 of a public address (IPv6-only networks)
        ("127.0.0.1", False, True),
        ("127.8.9.10", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("10.0.0.1", False, True),
        ("172.31.255.255", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),
        ("fd00::1", False, True),
        ("192.0.2.1", False, True),
        ("169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("224.0.0.1", False, False),
        ("ff02::1", False, False),
        ("0.0.0.0", False, False),  # noqa: S104 - an address to refuse, not to bind
        ("::", False, False),
        ("240.0.0.1", False, False),
        ("255.255.255.255", False, False),
    ],
)
def test_address_policy(address: str, public_only: bool, private_allowed: bool) -> None:
    from shared.fetch import refusal

    ip = ipaddress.ip_address(address)
    assert (refusal(ip, allow_private=False) is None) is public_only
    assert (refusal(ip, allow_private=True) is None) is private_allowed


def test_importing_shared_fetch_loads_no_database_or_redis_client() -> None:
    code = "import sys, shared.fetch; print(sorted(m for m in sys.modules if m in ('asyncpg', 'redis')))"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.strip() == "[]"
