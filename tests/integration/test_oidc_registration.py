"""Registering OpenID Connect clients through :func:`auth_server.registration.register`, against the
real stores: the metadata stored (Dynamic Registration 1.0 §2), the pairwise sector (Core §8.1) with
a ``sector_identifier_uri`` fetched from a real server through the guarded fetcher, and the demo that
``tessera dev`` seeds."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from auth_server import dev
from auth_server.commands import migrate_auth, open_registry
from auth_server.registration import ClientMetadata, RegistrationError, register
from auth_server.registry import Registry
from tests.support.resolvers import OneAddress
from tests.support.servers import AppFactory, free_port, make_settings, registry_of
from tests.support.services import Services

REDIRECTS = ["https://printer.example/callback", "https://print.example/callback"]


def _rp(**changes: Any) -> ClientMetadata:
    return dataclasses.replace(
        ClientMetadata(
            client_name=f"RP {uuid.uuid4().hex[:8]}",
            redirect_uris=["https://printer.example/callback"],
            grant_types=["authorization_code", "implicit", "refresh_token"],
            scope=["openid", "profile", "email", "offline_access", "photos:read"],
        ),
        **changes,
    )


async def _names(registry: Registry) -> set[str]:
    return {client.client_name for client in await registry.clients.list()}


@dataclass
class SectorServer:
    """Serves a sector identifier document at ``url`` (``document``, or ``status`` if not 200)."""

    port: int
    document: Any = None
    status: int = 200
    hits: int = 0
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}/sector.json"


@pytest.fixture
async def sector_server() -> AsyncIterator[SectorServer]:
    server = SectorServer(free_port())

    async def serve(request: web.Request) -> web.Response:
        server.hits += 1
        if server.status != 200:
            return web.Response(status=server.status)
        return web.json_response(server.document)

    app = web.Application()
    app.router.add_get("/sector.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_openid_metadata_is_stored_as_registered(registry: Registry) -> None:
    client, secret, _ = await register(
        registry,
        _rp(
            response_types=["code", "id_token code", "token id_token"],
            post_logout_redirect_uris=["https://printer.example/"],
            id_token_signed_response_alg="ES256",
            userinfo_signed_response_alg="RS256",
            backchannel_logout_uri="https://printer.example/backchannel-logout",
            backchannel_logout_session_required=True,
            default_max_age=900,
            require_auth_time=True,
            logo_uri="https://printer.example/logo.png",
            client_uri="https://printer.example/",
            policy_uri="https://printer.example/privacy",
            tos_uri="https://printer.example/terms",
        ),
    )
    assert secret is not None
    stored = await registry.clients.load(client.client_id)
    assert stored == client
    assert client.response_types == ("code", "code id_token", "id_token token")  # canonical forms
    assert client.post_logout_redirect_uris == ("https://printer.example/",)
    assert client.subject_type == "public" and client.sector_identifier is None
    assert client.id_token_signed_response_alg == "ES256"
    assert client.userinfo_signed_response_alg == "RS256"
    assert client.backchannel_logout_uri == "https://printer.example/backchannel-logout"
    assert client.backchannel_logout_session_required is True
    assert client.default_max_age == 900 and client.require_auth_time is True
    shown = client.registration()
    assert shown["response_types"] == ["code", "code id_token", "id_token token"]
    assert shown["tos_uri"] == "https://printer.example/terms"


async def test_response_types_left_out_follow_the_grant_types(registry: Registry) -> None:
    client, _, _ = await register(registry, _rp(grant_types=["authorization_code"]))
    assert client.registered_response_types is None and client.response_types == ("code",)
    assert client.id_token_signed_response_alg == "RS256" and client.userinfo_signed_response_alg is None


async def test_a_pairwise_sector_is_the_redirect_uris_host(registry: Registry) -> None:
    client, _, _ = await register(
        registry,
        _rp(
            subject_type="pairwise", redirect_uris=["https://printer.example/a", "https://printer.example/b"]
        ),
    )
    assert client.subject_type == "pairwise" and client.sector_identifier == "printer.example"
    refused = _rp(subject_type="pairwise", redirect_uris=REDIRECTS)
    with pytest.raises(RegistrationError, match="sector_identifier_uri"):
        await register(registry, refused)
    assert refused.client_name not in await _names(registry)


async def test_a_sector_identifier_uri_listing_every_redirect_uri_names_the_sector(
    registry: Registry, sector_server: SectorServer
) -> None:
    sector_server.document = [*REDIRECTS, "https://other.example/cb"]
    client, _, _ = await register(
        registry,
        _rp(subject_type="pairwise", redirect_uris=REDIRECTS, sector_identifier_uri=sector_server.url),
    )
    assert sector_server.hits == 1
    assert client.sector_identifier == "127.0.0.1" and client.sector_identifier_uri == sector_server.url
    assert (await registry.clients.load(client.client_id)) == client
    # a public client's sector_identifier_uri is checked all the same
    public, _, _ = await register(
        registry, _rp(redirect_uris=REDIRECTS, sector_identifier_uri=sector_server.url)
    )
    assert sector_server.hits == 2 and public.subject_type == "public"


@pytest.mark.parametrize(
    ("document", "status", "match"),
    [
        (REDIRECTS[:1], 200, "does not list the redirect URI.*print.example"),
        ({"redirect_uris": REDIRECTS}, 200, "JSON array"),
        (None, 404, "HTTP 404"),
    ],
)
async def test_a_sector_identifier_uri_not_listing_every_redirect_uri_is_refused(
    registry: Registry, sector_server: SectorServer, document: Any, status: int, match: str
) -> None:
    sector_server.document, sector_server.status = document, status
    refused = _rp(subject_type="pairwise", redirect_uris=REDIRECTS, sector_identifier_uri=sector_server.url)
    with pytest.raises(RegistrationError, match=f"sector_identifier_uri.*{match}"):
        await register(registry, refused)
    assert sector_server.hits == 1
    assert refused.client_name not in await _names(registry)


async def test_a_production_issuer_fetches_no_sector_document_from_a_private_address(
    app_with: AppFactory, sector_server: SectorServer
) -> None:
    registry = registry_of(await app_with(issuer="https://auth.example"))
    sector_server.document = REDIRECTS
    # a name that resolves to the loopback: the fetch guard refuses before connecting
    named = f"https://sectors.printer.example:{sector_server.port}/sector.json"
    metadata = _rp(subject_type="pairwise", redirect_uris=REDIRECTS, sector_identifier_uri=named)
    with pytest.raises(RegistrationError, match=r"refused to fetch.*127\.0\.0\.1, a loopback address"):
        await register(registry, metadata, resolver=OneAddress("127.0.0.1"))
    # an address literal, or plain http, is refused before any fetch is tried
    for uri in (f"https://127.0.0.1:{sector_server.port}/sector.json", sector_server.url):
        with pytest.raises(RegistrationError, match="sector_identifier_uri"):
            await register(registry, dataclasses.replace(metadata, sector_identifier_uri=uri))
    assert sector_server.hits == 0
    assert metadata.client_name not in await _names(registry)


async def test_a_development_issuer_never_fetches_from_link_local_addresses(
    registry: Registry, sector_server: SectorServer
) -> None:
    named = f"https://metadata.printer.example:{sector_server.port}/sector.json"
    metadata = _rp(subject_type="pairwise", redirect_uris=REDIRECTS, sector_identifier_uri=named)
    with pytest.raises(RegistrationError, match=re.escape("169.254.169.254, a link-local address")):
        await register(registry, metadata, resolver=OneAddress("169.254.169.254"))


async def test_the_development_seed(
    empty_database: str, backing: Services, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(empty_database, backing.redis_url, redis_prefix, dev_dir=tmp_path)
    await migrate_auth(empty_database)
    async with open_registry(settings) as registry:
        demo, subject = await dev.seed(settings, registry, printer_port=9123)
        user = await registry.users.by_username(dev.DEMO_USER)
        assert user is not None and user.subject == subject
        profile = await registry.users.profile(user.user_id)
        assert profile is not None
        assert profile.nickname == "小美" and profile.name == "Xiaomei Wang"
        assert profile.email == "xiaomei@example.com" and profile.email_verified is True
        assert profile.locale == "zh-CN" and profile.zoneinfo == "Asia/Shanghai"
        assert profile.picture is not None and profile.picture.startswith("data:image/svg+xml;base64,")

        printer = await registry.clients.load(demo.printer_id)
        assert printer is not None
        assert {"openid", "profile", "email", "offline_access", "photos:read"} == set(printer.scope)
        assert printer.redirect_uris == ("http://localhost:9123/callback",)
        assert printer.post_logout_redirect_uris == ("http://localhost:9123/",)
        assert printer.backchannel_logout_uri == "http://localhost:9123/backchannel-logout"
        assert printer.backchannel_logout_session_required is True

        # a later run keeps the demo, and leaves a profile the operator changed alone
        await registry.users.set_profile(user.user_id, {"nickname": "Mei"})
        again, _ = await dev.seed(settings, registry, printer_port=9123)
        assert again == demo
        changed = await registry.users.profile(user.user_id)
        assert changed is not None and changed.nickname == "Mei"

        # a printer registered by an earlier version (no OpenID Connect) is replaced
        old, old_secret, _ = await register(
            registry,
            ClientMetadata(
                client_name="Photo Printer",
                redirect_uris=["http://localhost:9123/callback"],
                grant_types=["authorization_code", "refresh_token"],
                scope=["photos:read"],
            ),
        )
        assert old_secret is not None
        saved = tmp_path / "demo-clients.json"
        saved.write_text(
            json.dumps({**demo.__dict__, "printer_id": old.client_id, "printer_secret": old_secret})
        )
        replaced, _ = await dev.seed(settings, registry, printer_port=9123)
        assert replaced.printer_id not in (old.client_id, demo.printer_id)
        assert await registry.clients.load(old.client_id) is None
        assert await registry.clients.load(demo.partner_id) is None  # replaced with the printer
        current = await registry.clients.load(replaced.printer_id)
        assert current is not None and "openid" in current.scope
        assert json.loads(saved.read_text())["printer_id"] == replaced.printer_id
