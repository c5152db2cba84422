"""Issue 11, hardening round 2: one test per defect an outside security review reproduced against a
running server (each failed on the code before the fix), beside the attack tests of
``test_rfc9700_attacks.py``. Defects 5, 10, 13 and 14 have their own files:
``test_revocation_reaches_resource_servers.py``, ``tests/unit/test_crit_header.py``,
``test_outbound_fetch_guard.py`` and ``tests/unit/test_deploy_manifests.py``.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.crypto import hash_password
from auth_server.registry import Registry
from auth_server.stores.clients import ClientStore
from auth_server.stores.users import User
from tests.integration.test_private_key_jwt import ISSUER, TOKEN_URL, claims, client_credentials, partner
from tests.support.flow import Pkce, authorize_params, basic, hidden, obtain_code, query_of
from tests.support.servers import PASSWORD, ClientFactory, LiveServer
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]


def _registry(http: TestClient) -> Registry:
    assert http.app is not None
    registry: Registry = http.app[REGISTRY]
    return registry


async def _password_client(registry: Registry) -> tuple[Client, str]:
    client, secret = await registry.clients.create(
        name="First-party app",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    assert secret
    return client, secret


async def _password(
    http: TestClient, client: tuple[Client, str], username: str, password: str, ip: str | None = None
) -> ClientResponse:
    headers = basic(client[0].client_id, client[1])
    if ip is not None:
        headers["X-Forwarded-For"] = ip
    return await http.post(
        "/oauth2/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=headers,
    )


async def _evaluated(responses: list[ClientResponse]) -> int:
    """How many answers came from a password actually checked (not refused by the lockout)."""
    bodies = [await r.json() for r in responses]
    return sum(1 for b in bodies if "access_token" in b or "incorrect" in b.get("error_description", ""))


# --- 1: unauthenticated memory exhaustion through the client cache ---------------------------------


async def test_made_up_client_ids_do_not_grow_memory(live_server: LiveServer) -> None:
    """1,500 revocations with 64,000-character client ids took a server from 90 to 182 MiB for good."""
    huge = "x" * 64_000

    async def flood(session: aiohttp.ClientSession, count: int, offset: int) -> None:
        for n in range(count):
            form = {"client_id": f"{offset + n}{huge}", "token": "anything"}
            async with session.post(f"{live_server.url}/oauth2/revoke", data=form) as response:
                assert response.status == 401
                assert (await response.json())["error"] == "invalid_client"

    async with aiohttp.ClientSession() as session:
        await flood(session, 100, 0)  # warm up whatever allocates once
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await flood(session, 2_000, 100)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 4 * 1024 * 1024, f"memory grew by {grown / 2**20:.1f} MiB"
    # none of them was cached (the cache may hold real clients: the session's other tests leave
    # back-channel logout deliveries in the shared queue, whose clients this server looks up)
    assert not [key for key in live_server.registry.clients.cache.held_keys() if huge in key]


async def test_the_client_cache_is_bounded(registry: Registry) -> None:
    """Ids that could be valid are looked up and their misses cached, but never more than the bound."""
    store = ClientStore(
        registry.clients._pool,
        registry.clients._redis,
        registry.clients.channel,
        registry.audit,
        max_cached=50,
    )
    for n in range(400):
        assert await store.get(f"unknown-client-{n:06d}") is None
    assert len(store.cache) <= 50


# --- 2: the lockout was check-then-act -----------------------------------------------------------


async def test_concurrent_password_grant_guesses_cannot_outrun_the_lockout(
    app_with: Factory, user: User
) -> None:
    """80 concurrent guesses were all evaluated and the correct 80th succeeded, with a limit of 5."""
    http = await app_with(login_max_failures=5, hashing_queue=100)  # every guess is admitted
    client = await _password_client(_registry(http))
    guesses = [_password(http, client, user.username, f"wrong-{n}") for n in range(40)]
    responses = await asyncio.gather(*guesses)
    answers = [(r.status, (await r.json()).get("error_description")) for r in responses]
    assert await _evaluated(list(responses)) <= 5, answers
    # and the right password, sent after them, meets the lockout. (Sent among them, it may be
    # checked first and succeed: then the guesser had it right within the limit, and, as in
    # Keycloak, a success clears that address's failures.)
    assert (await _password(http, client, user.username, PASSWORD)).status != 200


async def test_many_correct_sign_ins_at_once_all_succeed(app_with: Factory, user: User) -> None:
    """Attempts in flight fill a bucket only for a moment: the next ones wait for them, not refused."""
    http = await app_with(login_max_failures=3, hashing_queue=100)
    client = await _password_client(_registry(http))
    responses = await asyncio.gather(*(_password(http, client, user.username, PASSWORD) for _ in range(12)))
    assert [r.status for r in responses] == [200] * 12


async def test_concurrent_login_page_guesses_cannot_outrun_the_lockout(app_with: Factory, user: User) -> None:
    http = await app_with(login_max_failures=5, hashing_queue=100)
    csrf = hidden(await (await http.get("/login")).text(), "csrf_token")
    form = {"username": user.username, "csrf_token": csrf}
    responses = await asyncio.gather(
        *(http.post("/login", data={**form, "password": f"wrong-{n}"}) for n in range(30))
    )
    statuses = [r.status for r in responses]
    assert statuses.count(400) <= 5 and set(statuses) <= {400, 429, 503}  # 503: busy, on a loaded machine


async def test_a_full_hashing_queue_answers_503_with_retry_after(app_with: Factory, user: User) -> None:
    """Password checks beyond the queue wait for nothing: 503, Retry-After, and no attempt counted."""
    http = await app_with(hashing_threads=1, hashing_queue=2, login_max_failures=1000)
    client = await _password_client(_registry(http))
    responses = await asyncio.gather(*(_password(http, client, user.username, f"w{n}") for n in range(12)))
    busy = [r for r in responses if r.status == 503]
    assert busy and all(r.headers["Retry-After"] == "1" for r in busy)
    assert [(await r.json())["error"] for r in busy] == ["temporarily_unavailable"] * len(busy)
    assert (await _password(http, client, user.username, PASSWORD)).status == 200


# --- 3: the lockout and the lookup disagreed on Unicode case --------------------------------------


async def test_a_locked_username_cannot_be_reached_through_unicode_case(
    app_with: Factory, registry: Registry
) -> None:
    """``adm\\u0130n`` found the locked ``admin`` with a fresh bucket of guesses, then signed in."""
    http = await app_with(login_max_failures=5)
    admin = await registry.users.create(f"admin-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    client = await _password_client(_registry(http))
    for n in range(5):
        await _password(http, client, admin.username, f"wrong-{n}")
    assert (await _password(http, client, admin.username, PASSWORD)).status == 400  # locked
    for variant in (
        admin.username.replace("i", "\u0130"),
        admin.username.upper(),
        f"\uff41{admin.username[1:]}",
    ):
        response = await _password(http, client, variant, PASSWORD)
        assert response.status == 400, variant


async def test_usernames_equal_in_canonical_form_cannot_both_register(registry: Registry) -> None:
    name = f"Stra\u00dfe-{uuid.uuid4().hex[:6]}"
    await registry.users.create(name, hash_password(PASSWORD))
    with pytest.raises(ValueError, match="taken"):
        await registry.users.create(name.replace("\u00df", "SS"), hash_password(PASSWORD))
    # the canonical form finds the user whichever way the name is typed
    found = await registry.users.by_username(name.upper())
    assert found is not None and found.username == name


# --- 4: silent re-authorization of public clients ---------------------------------------------------


async def test_a_public_client_gets_the_consent_page_every_time(
    http: TestClient, new_client: ClientFactory, user: User, registry: Registry
) -> None:
    """An app claiming a native client's redirect scheme got a code with no page shown (RFC 8252 §8.6)."""
    public, _ = await new_client(public=True)
    first = authorize_params(public.client_id, pkce=Pkce.new())
    assert "code" in await obtain_code(http, first, user.username, PASSWORD)
    again = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(public.client_id, pkce=Pkce.new()))}",
        allow_redirects=False,
    )
    assert again.status == 200 and "Allow" in await again.text()
    # implicit grants are asked each time too
    implicit, _ = await new_client(public=True, grant_types=["implicit"])
    await obtain_code(
        http, authorize_params(implicit.client_id, response_type="token"), user.username, PASSWORD
    )
    repeat = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(implicit.client_id, response_type='token'))}",
        allow_redirects=False,
    )
    assert repeat.status == 200
    # a confidential client's remembered consent still answers at once, and so does a first-party app's
    confidential, _ = await new_client()
    assert "code" in await obtain_code(
        http, authorize_params(confidential.client_id), user.username, PASSWORD
    )
    silent = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(confidential.client_id))}", allow_redirects=False
    )
    assert silent.status == 302 and "code" in query_of(silent.headers["Location"])
    updated = await registry.clients.update(public.client_id, first_party=True)
    assert updated is not None and updated.first_party
    trusted = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(public.client_id, pkce=Pkce.new()))}",
        allow_redirects=False,
    )
    assert trusted.status == 302 and "code" in query_of(trusted.headers["Location"])


# --- 6: every cookieless GET /login stored a session --------------------------------------------------


async def test_the_login_page_stores_nothing(http: TestClient, settings: Any, backing: Services) -> None:
    redis = Redis.from_url(backing.redis_url)
    try:

        async def stored() -> int:
            return len([k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000)])

        before = await stored()
        for _ in range(300):
            http.session.cookie_jar.clear()
            assert (await http.get("/login")).status == 200
        assert await stored() == before
    finally:
        await redis.aclose()


# --- 7: private_key_jwt audience too broad -------------------------------------------------------------


async def test_assertions_must_name_only_the_issuer(http: TestClient, registry: Registry) -> None:
    client, key = await partner(registry)
    for aud in (TOKEN_URL, [ISSUER, "https://other.example"], [ISSUER, TOKEN_URL], [ISSUER]):
        response = await client_credentials(http, key.sign(claims(client.client_id, aud=aud)))
        assert response.status == 401, aud
        assert (await response.json())["error"] == "invalid_client"
    assert (await client_credentials(http, key.sign(claims(client.client_id, aud=ISSUER)))).status == 200


async def test_the_audience_compatibility_switch_admits_the_endpoint_alone(
    app_with: Factory, registry: Registry
) -> None:
    http = await app_with(assertion_audience_compat="on")
    client, key = await partner(registry)
    assert (await client_credentials(http, key.sign(claims(client.client_id, aud=TOKEN_URL)))).status == 200
    listed = await client_credentials(
        http, key.sign(claims(client.client_id, aud=[ISSUER, "https://x.example"]))
    )
    assert listed.status == 401


# --- 8: IPv6 addresses were limited per /128 -------------------------------------------------------


async def test_ipv6_lockouts_count_the_whole_slash_64(app_with: Factory, registry: Registry) -> None:
    http = await app_with(trusted_proxies="127.0.0.1", login_max_failures_per_ip=3, login_max_failures=100)
    client = await _password_client(_registry(http))
    for n in range(3):
        await _password(http, client, f"nobody-{n}", "guess", ip=f"2001:db8:1:2::{n + 1:x}")
    same_64 = await _password(http, client, "nobody-x", "guess", ip="2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert "Too many" in (await same_64.json())["error_description"]
    other_64 = await _password(http, client, "nobody-y", "guess", ip="2001:db8:1:3::1")
    assert "incorrect" in (await other_64.json())["error_description"]


# --- 9: PKCE was optional for confidential clients ------------------------------------------------------


async def test_pkce_is_required_of_confidential_clients_by_default(
    http: TestClient, registry: Registry
) -> None:
    client, _ = await registry.clients.create(
        name="Default confidential client",
        redirect_uris=["https://printer.example/callback"],
        grant_types=["authorization_code"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    response = await http.get(
        f"/oauth2/authorize?{urlencode(authorize_params(client.client_id))}", allow_redirects=False
    )
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "invalid_request" and "PKCE" in answer["error_description"]
    relaxed = await registry.clients.update(client.client_id, require_pkce=False)
    assert relaxed is not None and not relaxed.require_pkce
    public, _ = await registry.clients.create(
        name="Public client",
        redirect_uris=["https://printer.example/callback"],
        grant_types=["authorization_code"],
        scope=["photos:read"],
        auth_method="none",
    )
    assert await registry.clients.update(public.client_id, require_pkce=False) is None  # never for public


# --- 11: refresh-token families lived forever while used ---------------------------------------------


async def test_a_refresh_token_family_ends_at_its_absolute_lifetime(app_with: Factory, user: User) -> None:
    http = await app_with(refresh_family_lifetime=3)
    client = await _password_client(_registry(http))
    started = time.monotonic()
    tokens = await (await _password(http, client, user.username, PASSWORD)).json()
    refresh = tokens["refresh_token"]
    for _ in range(2):  # used every second: each use would have slid the expiry
        await asyncio.sleep(1)
        response = await http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh},
            headers=basic(client[0].client_id, client[1]),
        )
        assert response.status == 200
        refresh = (await response.json())["refresh_token"]
    await asyncio.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        headers=basic(client[0].client_id, client[1]),
    )
    assert response.status == 400 and (await response.json())["error"] == "invalid_grant"


# --- 12: unlimited revocation and introspection, and the lockout as a weapon ---------------------------


async def test_revocation_and_introspection_are_rate_limited(app_with: Factory) -> None:
    http = await app_with(rate_revoke_per_client=3, rate_introspect_per_client=3)
    registry = _registry(http)
    client, secret = await registry.clients.create(
        name="Resource server",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["warehouse:stats"],
        auth_method="client_secret_basic",
        allow_introspection=True,
    )
    assert secret
    for path in ("/oauth2/revoke", "/oauth2/introspect"):
        statuses = [
            (await http.post(path, data={"token": "t"}, headers=basic(client.client_id, secret))).status
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429], path
    by_ip = await app_with(rate_revoke_per_ip=2)
    statuses = [
        (await by_ip.post("/oauth2/revoke", data={"token": "t", "client_id": "x"})).status for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


async def test_a_public_clients_budget_is_kept_per_address(
    app_with: Factory, new_client: ClientFactory
) -> None:
    """A public client proves nothing but its id: one stranger must not spend every user's share."""
    http = await app_with(rate_revoke_per_client=3, trusted_proxies="127.0.0.1")
    public, _ = await new_client(public=True)
    form = {"token": "t", "client_id": public.client_id}
    stranger = [
        (await http.post("/oauth2/revoke", data=form, headers={"X-Forwarded-For": "203.0.113.9"})).status
        for _ in range(4)
    ]
    assert stranger == [200, 200, 200, 429]
    user = await http.post("/oauth2/revoke", data=form, headers={"X-Forwarded-For": "198.51.100.20"})
    assert user.status == 200


async def test_a_spray_from_a_shared_address_spares_users_known_there(
    app_with: Factory, user: User, registry: Registry
) -> None:
    """Behind one NAT (or a gateway not trusted as a proxy) everyone shares an address: a spray of
    guesses over many names locks that address for strangers only."""
    http = await app_with(trusted_proxies="127.0.0.1", login_max_failures_per_ip=10, login_max_failures=100)
    client = await _password_client(_registry(http))
    shared = "192.0.2.200"
    assert (await _password(http, client, user.username, PASSWORD, ip=shared)).status == 200
    for n in range(12):
        await _password(http, client, f"sprayed-{n}", "guess", ip=shared)
    newcomer = await registry.users.create(f"newcomer-{uuid.uuid4().hex[:8]}", hash_password(PASSWORD))
    refused = await _password(http, client, newcomer.username, PASSWORD, ip=shared)
    assert "Too many" in (await refused.json())["error_description"]
    assert (await _password(http, client, user.username, PASSWORD, ip=shared)).status == 200


async def test_strangers_cannot_lock_a_user_out_of_her_usual_address(app_with: Factory, user: User) -> None:
    http = await app_with(trusted_proxies="127.0.0.1", login_max_failures=5)
    client = await _password_client(_registry(http))
    home, stranger, cafe = "198.51.100.10", "203.0.113.66", "192.0.2.44"
    assert (await _password(http, client, user.username, PASSWORD, ip=home)).status == 200
    for n in range(8):
        await _password(http, client, user.username, f"guess-{n}", ip=stranger)
    # the name is locked for addresses it never signed in from...
    refused = await _password(http, client, user.username, PASSWORD, ip=cafe)
    assert refused.status == 400 and "Too many" in (await refused.json())["error_description"]
    # ...but not at home, which keeps a bucket of its own
    assert (await _password(http, client, user.username, PASSWORD, ip=home)).status == 200
    for n in range(5):
        await _password(http, client, user.username, f"typo-{n}", ip=home)
    assert (await _password(http, client, user.username, PASSWORD, ip=home)).status == 400


# --- also: audit events, and the headers of every page ------------------------------------------------


async def test_sign_ins_and_failures_are_audited(app_with: Factory, user: User) -> None:
    http = await app_with()
    registry = _registry(http)
    client = await _password_client(registry)
    await _password(http, client, user.username, "wrong-password")
    await _password(http, client, user.username, PASSWORD)
    failed = [e for e in await registry.audit.recent("login.failed") if e.subject == user.subject]
    succeeded = [e for e in await registry.audit.recent("login.succeeded") if e.subject == user.subject]
    assert (
        failed and failed[0].details["via"] == "password_grant" and failed[0].client_id == client[0].client_id
    )
    assert succeeded and succeeded[0].ip == "127.0.0.1"
    assert "wrong-password" not in str(failed[0].details) and PASSWORD not in str(succeeded[0].details)


async def test_pages_allow_forms_only_to_this_server_and_no_opener(http: TestClient) -> None:
    response = await http.get("/login")
    assert "form-action 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
