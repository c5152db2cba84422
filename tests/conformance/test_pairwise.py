"""Pairwise subject identifiers (OpenID Connect Core §8, §8.1), as the Dynamic plan's
``oidcc-registration-sector-uri`` and the pairwise variants check them: one ``sub`` per sector,
stable for a client, the same in the ID token and at userinfo, unrelated across sectors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from auth_server.registration import RegistrationError
from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import code_flow, openid_client, userinfo_claims
from tests.support.servers import free_port

PRINTER = "https://printer.example/callback"
OTHER = "https://other.example/callback"
ALSO_PRINTER = "https://printer.example/second-app"


async def test_pairwise_subjects_differ_across_sectors(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Two apps in different sectors cannot correlate the user: different subs, neither the
    user's own id; a public client sees the user's own id."""
    printer, printer_secret = await openid_client(registry, subject_type="pairwise", redirect_uris=[PRINTER])
    other, other_secret = await openid_client(
        registry, subject_type="pairwise", redirect_uris=[OTHER], name="Other App"
    )
    public, public_secret = await openid_client(registry, name="Public App")
    a = await code_flow(http, printer, printer_secret, member, redirect_uri=PRINTER)
    b = await code_flow(http, other, other_secret, member, redirect_uri=OTHER)
    c = await code_flow(http, public, public_secret, member)
    assert a.id_token["sub"] != b.id_token["sub"]
    assert member.subject not in (a.id_token["sub"], b.id_token["sub"])
    assert c.id_token["sub"] == member.subject


async def test_pairwise_subject_is_stable_and_the_same_at_userinfo(
    http: TestClient, registry: Registry, member: User
) -> None:
    """The same client gets the same sub every time, and userinfo's sub is the ID token's (Core §5.3.2)."""
    client, secret = await openid_client(registry, subject_type="pairwise")
    first = await code_flow(http, client, secret, member)
    again = await code_flow(http, client, secret, member, prompt="login")
    assert again.browsing.login_shown
    assert first.id_token["sub"] == again.id_token["sub"]
    for login in (first, again):
        assert (await userinfo_claims(http, login.tokens["access_token"]))["sub"] == login.id_token["sub"]
    # an ID token hint carries the pairwise sub, and is understood
    silent = await code_flow(
        http, client, secret, member, prompt="none", id_token_hint=first.tokens["id_token"]
    )
    assert silent.id_token["sub"] == first.id_token["sub"]


async def test_pairwise_subject_is_shared_within_a_sector(
    http: TestClient, registry: Registry, member: User
) -> None:
    """Two clients whose redirect URIs share a host are one sector (Core §8.1): the same sub."""
    one, one_secret = await openid_client(registry, subject_type="pairwise", redirect_uris=[PRINTER])
    two, two_secret = await openid_client(
        registry, subject_type="pairwise", redirect_uris=[ALSO_PRINTER], name="Printer Two"
    )
    a = await code_flow(http, one, one_secret, member, redirect_uri=PRINTER)
    b = await code_flow(http, two, two_secret, member, redirect_uri=ALSO_PRINTER)
    assert a.id_token["sub"] == b.id_token["sub"] != member.subject


@pytest.fixture
async def sector_document() -> AsyncIterator[str]:
    """A sector identifier document (Core §8.1) served on loopback, listing both apps' redirect URIs."""

    async def serve(request: web.Request) -> web.Response:
        return web.json_response([PRINTER, OTHER])

    app = web.Application()
    app.router.add_get("/sector.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/sector.json"
    finally:
        await runner.cleanup()


async def test_oidcc_registration_sector_uri(
    http: TestClient, registry: Registry, member: User, sector_document: str
) -> None:
    """Clients on different hosts that register one sector_identifier_uri are one sector: the same
    sub; a client whose redirect URI the document does not list cannot register it."""
    one, one_secret = await openid_client(
        registry, subject_type="pairwise", redirect_uris=[PRINTER], sector_identifier_uri=sector_document
    )
    two, two_secret = await openid_client(
        registry,
        subject_type="pairwise",
        redirect_uris=[OTHER],
        sector_identifier_uri=sector_document,
        name="Other App",
    )
    a = await code_flow(http, one, one_secret, member, redirect_uri=PRINTER)
    b = await code_flow(http, two, two_secret, member, redirect_uri=OTHER)
    assert a.id_token["sub"] == b.id_token["sub"] != member.subject
    with pytest.raises(RegistrationError):
        await openid_client(
            registry,
            subject_type="pairwise",
            redirect_uris=["https://unlisted.example/cb"],
            sector_identifier_uri=sector_document,
        )


async def test_pairwise_client_across_hosts_needs_a_sector_identifier_uri(registry: Registry) -> None:
    """oidcc-registration-sector-bad's rule: redirect URIs on several hosts have no one sector."""
    with pytest.raises(RegistrationError):
        await openid_client(registry, subject_type="pairwise", redirect_uris=[PRINTER, OTHER])
