"""OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0, against real PostgreSQL and
Redis, with a real local aiohttp server as the relying party receiving logout tokens.

Sessions get their clients noted directly (``registry.sessions.note_client``), as issuing an ID
token in the session does; ID token hints are signed with the key ring as ID tokens are.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from auth_server.clients import Client
from auth_server.oidc.logout import BACKCHANNEL_EVENT, LOGOUT_TOKEN_TTL, deliver, deliver_forever
from auth_server.oidc.signer import sign
from auth_server.registry import Registry
from auth_server.stores.logout_deliveries import Backoff, Delivery, LogoutDeliveryStore
from auth_server.stores.sessions import Session
from auth_server.stores.users import User
from shared.fetch import Fetcher, FetchError, FetchRefused
from shared.redis import Keys
from tests.support.flow import hidden, sign_in
from tests.support.servers import PASSWORD, free_port
from tests.support.services import Services

LOGOUT = "/oauth2/logout"
AFTER = "https://printer.example/signed-out"
COOKIE = "tessera_session"  # the development cookie's name (the tests' issuer is http://localhost)


# -- the relying party ------------------------------------------------------------------------------


@dataclass
class RelyingParty:
    """A client's back-channel logout endpoint: answers with ``statuses`` in turn (then 200)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0  # seconds the first request waits before answering
    received: list[dict[str, str]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.received.append({k: str(v) for k, v in form.items()})
        self.arrived.set()
        if self.delay and len(self.received) == 1:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        self.answered.append(status)
        self.changed.set()
        return web.Response(status=status, headers={"Cache-Control": "no-store"})

    async def wait_for(self, count: int, seconds: float = 10.0) -> None:
        """Until ``count`` requests were answered (:class:`TimeoutError` after ``seconds``)."""
        async with asyncio.timeout(seconds):
            while len(self.answered) < count:
                self.changed.clear()
                await self.changed.wait()


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/backchannel")


@pytest.fixture
async def rp() -> AsyncIterator[RelyingParty]:
    party = RelyingParty()
    app = web.Application()
    app.router.add_post("/backchannel", party.handle)
    app.router.add_post("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    party.url = f"http://127.0.0.1:{port}/backchannel"
    try:
        yield party
    finally:
        await runner.cleanup()


# -- helpers ----------------------------------------------------------------------------------------


async def oidc_client(registry: Registry, name: str = "Photo Printer", **openid: Any) -> Client:
    metadata = {"post_logout_redirect_uris": [AFTER, "https://printer.example/bye?from=tessera"], **openid}
    client, _ = await registry.clients.create(
        name=name,
        redirect_uris=["https://printer.example/callback"],
        grant_types=["authorization_code"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
        openid=metadata,
    )
    return client


async def signed_in(http: TestClient, registry: Registry, user: User) -> tuple[str, Session]:
    """Sign ``user`` in through /login; the session's cookie value and the session."""
    assert await sign_in(http, user.username, PASSWORD) == 303
    key = cookie(http)
    assert key is not None
    session = await registry.sessions.get(key)
    assert session is not None and session.sid is not None
    return key, session


def cookie(http: TestClient) -> str | None:
    return next((c.value for c in http.session.cookie_jar if c.key == COOKIE and c.value), None)


async def id_token(
    registry: Registry, client: Client, user: User, session: Session | None, **overrides: Any
) -> str:
    """An ID token of ``client`` for ``user`` in ``session``, as the core signs them."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": registry.settings.issuer,
        "sub": await registry.subjects.for_client(client, user.subject),
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now + 600,
        "auth_time": now,
    }
    if session is not None and session.sid is not None:
        claims["sid"] = session.sid
    claims.update(overrides)
    return sign(registry.keyring, claims, alg=client.id_token_signed_response_alg)


async def logout(http: TestClient, method: str = "GET", **params: str) -> Any:
    if method == "GET":
        return await http.get(f"{LOGOUT}?{urlencode(params)}", allow_redirects=False)
    return await http.post(LOGOUT, data=params, allow_redirects=False)


async def verified(http: TestClient, client: Client, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The logout token's header and claims, its signature checked against /oauth2/jwks."""
    header = jwt.get_unverified_header(token)
    jwks = await (await http.get("/oauth2/jwks")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=client.client_id,
        issuer="http://localhost:8000",
        options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]},
    )
    return header, claims


def own_store(registry: Registry, redis: Redis, **backoff: Any) -> tuple[Registry, LogoutDeliveryStore]:
    """A registry whose delivery queue is a fresh one of its own (not the app's worker's)."""
    store = LogoutDeliveryStore(
        redis, Keys(f"tessera-test-logout-{uuid.uuid4().hex[:8]}:"), backoff=Backoff(**backoff)
    )
    return replace(registry, logout_deliveries=store), store


@pytest.fixture
async def redis(backing: Services) -> AsyncIterator[Redis]:
    client = Redis.from_url(backing.redis_url)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match="tessera-test-logout-*"):
            await client.delete(key)
        await client.aclose()


async def run_worker(registry: Registry, **options: Any) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(deliver_forever(registry, stop, **options))


async def stop_worker(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    async with asyncio.timeout(5):
        await task


# -- RP-Initiated Logout 1.0 ------------------------------------------------------------------------


async def test_a_valid_hint_and_a_registered_uri_sign_out_and_redirect_with_state(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)
    hint = await id_token(registry, client, user, session)

    response = await logout(http, id_token_hint=hint, post_logout_redirect_uri=AFTER, state="s 1&2")

    assert response.status == 302
    assert response.headers["Location"] == f"{AFTER}?state=s+1%262"
    assert await registry.sessions.get(key) is None
    assert cookie(http) is None
    login_page = await http.get("/login")
    assert "Signed in" not in await login_page.text()
    ended = [e for e in await registry.audit.recent("session.ended") if e.subject == user.subject]
    assert ended and ended[0].details["via"] == "end_session"


async def test_the_form_post_redirects_with_303_and_keeps_the_registered_query(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)
    hint = await id_token(registry, client, user, session)

    response = await logout(
        http,
        "POST",
        id_token_hint=hint,
        client_id=client.client_id,
        post_logout_redirect_uri="https://printer.example/bye?from=tessera",
        state="abc",
        ui_locales="zh-CN en",
        logout_hint=user.username,
    )

    assert response.status == 303
    assert response.headers["Location"] == "https://printer.example/bye?from=tessera&state=abc"
    assert await registry.sessions.get(key) is None


async def test_without_a_redirect_uri_the_user_sees_a_signed_out_page(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)

    response = await logout(http, id_token_hint=await id_token(registry, client, user, session), state="x")

    assert response.status == 200
    page = await response.text()
    assert "You are signed out" in page and "Photo Printer" in page
    assert response.headers["X-Frame-Options"] == "DENY"
    assert await registry.sessions.get(key) is None


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/steal",
        AFTER + "/",  # exact match only
        AFTER.upper(),
        AFTER + "?x=1",
        "https://printer.example/callback",  # a redirect URI, not a post-logout one
    ],
)
async def test_an_unregistered_redirect_uri_is_an_error_page_never_a_redirect(
    http: TestClient, registry: Registry, user: User, uri: str
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)
    hint = await id_token(registry, client, user, session)

    response = await logout(http, id_token_hint=hint, post_logout_redirect_uri=uri, state="s")

    assert response.status == 400
    assert "Location" not in response.headers
    assert "post_logout_redirect_uri" in await response.text()
    assert await registry.sessions.get(key) is not None  # not signed out


async def test_a_redirect_uri_without_an_identified_client_is_refused(
    http: TestClient, registry: Registry, user: User
) -> None:
    await oidc_client(registry)
    key, _ = await signed_in(http, registry, user)

    response = await logout(http, post_logout_redirect_uri=AFTER)

    assert response.status == 400
    assert "Location" not in response.headers
    assert await registry.sessions.get(key) is not None


async def test_without_a_hint_the_user_confirms_with_the_sessions_csrf_token(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry, name="Photo Printer Deluxe")
    key, session = await signed_in(http, registry, user)

    page = await logout(http, client_id=client.client_id, post_logout_redirect_uri=AFTER, state="st")

    assert page.status == 200
    text = await page.text()
    assert "Sign out of Tessera?" in text and "Photo Printer Deluxe" in text
    assert await registry.sessions.get(key) is not None  # a bare link signs nobody out
    # the form's answer redirects to the client: the CSP allows that origin, no other
    assert page.headers["Content-Security-Policy"].endswith("form-action 'self' https://printer.example")
    carried = {name: hidden(text, name) for name in ("client_id", "post_logout_redirect_uri", "state")}
    assert carried == {"client_id": client.client_id, "post_logout_redirect_uri": AFTER, "state": "st"}
    assert hidden(text, "csrf_token") == session.csrf

    for forged in ({}, {"csrf_token": ""}, {"csrf_token": "not-the-token"}):
        refused = await logout(http, "POST", confirm="yes", **carried, **forged)
        assert refused.status == 400
        assert "Location" not in refused.headers
        assert await registry.sessions.get(key) is not None

    confirmed = await logout(http, "POST", confirm="yes", csrf_token=session.csrf, **carried)
    assert confirmed.status == 303
    assert confirmed.headers["Location"] == f"{AFTER}?state=st"
    assert await registry.sessions.get(key) is None


async def test_a_confirmation_cannot_smuggle_an_unregistered_redirect(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)

    response = await logout(
        http,
        "POST",
        confirm="yes",
        csrf_token=session.csrf,
        client_id=client.client_id,
        post_logout_redirect_uri="https://evil.example/",
    )

    assert response.status == 400
    assert "Location" not in response.headers
    assert await registry.sessions.get(key) is not None


async def test_with_no_client_at_all_the_confirmed_user_sees_the_signed_out_page(
    http: TestClient, registry: Registry, user: User
) -> None:
    key, session = await signed_in(http, registry, user)

    page = await logout(http)
    assert page.status == 200
    assert "Sign out of Tessera?" in await page.text()

    done = await logout(http, "POST", confirm="yes", csrf_token=session.csrf)
    assert done.status == 200
    assert "You are signed out" in await done.text()
    assert await registry.sessions.get(key) is None


async def test_a_hint_for_another_user_or_session_asks_first(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)

    for hint in (
        await id_token(registry, client, user, session, sub=str(uuid.uuid4())),
        await id_token(registry, client, user, session, sid="an-earlier-session"),
    ):
        response = await logout(http, id_token_hint=hint, post_logout_redirect_uri=AFTER)
        assert response.status == 200
        assert "Sign out of Tessera?" in await response.text()
        assert await registry.sessions.get(key) is not None


async def test_an_expired_hint_is_accepted(http: TestClient, registry: Registry, user: User) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)
    old = int(time.time()) - 7200
    hint = await id_token(registry, client, user, session, iat=old, exp=old + 600)

    response = await logout(http, id_token_hint=hint, post_logout_redirect_uri=AFTER, state="late")

    assert response.status == 302
    assert response.headers["Location"] == f"{AFTER}?state=late"
    assert await registry.sessions.get(key) is None


async def test_a_hint_signed_by_another_key_is_refused(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    key, session = await signed_in(http, registry, user)
    genuine = await id_token(registry, client, user, session)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    real_kid = jwt.get_unverified_header(genuine)["kid"]

    for kid in ("a-key-nobody-knows", real_kid):  # an unknown key, and a forged one under a real kid
        forged = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid})
        response = await logout(http, id_token_hint=forged, post_logout_redirect_uri=AFTER)
        assert response.status == 400
        assert "Location" not in response.headers
        assert "id_token_hint" in await response.text()
        assert await registry.sessions.get(key) is not None


async def test_other_tokens_and_other_clients_hints_are_refused(
    http: TestClient, registry: Registry, user: User
) -> None:
    client = await oidc_client(registry)
    other = await oidc_client(registry, name="Someone else")
    key, session = await signed_in(http, registry, user)
    now = int(time.time())
    refused = [
        # an access token is not an ID token, though this server signed it
        sign(
            registry.keyring,
            {"iss": registry.settings.issuer, "sub": user.subject, "aud": client.client_id, "exp": now + 60},
            alg="ES256",
            typ="at+jwt",
        ),
        await id_token(registry, client, user, session, iss="https://elsewhere.example"),
        "not.a.jwt",
    ]
    for hint in refused:
        response = await logout(http, id_token_hint=hint, post_logout_redirect_uri=AFTER)
        assert response.status == 400, hint
    # client_id must be the hint's audience (§2)
    hint = await id_token(registry, client, user, session)
    mismatched = await logout(http, id_token_hint=hint, client_id=other.client_id)
    assert mismatched.status == 400
    unknown = await logout(http, client_id="NoSuchClientId0000000A", post_logout_redirect_uri=AFTER)
    assert unknown.status == 400
    assert await registry.sessions.get(key) is not None


async def test_nobody_signed_in_goes_straight_to_the_registered_uri(
    http: TestClient, registry: Registry
) -> None:
    client = await oidc_client(registry)

    response = await logout(http, client_id=client.client_id, post_logout_redirect_uri=AFTER, state="q")

    assert response.status == 302
    assert response.headers["Location"] == f"{AFTER}?state=q"


async def test_a_cross_site_post_without_the_cookie_is_looked_at_again_as_a_get(
    http: TestClient, registry: Registry
) -> None:
    """A SameSite=Lax cookie is not sent with another site's form POST, but is with a top-level
    GET: the POST is answered with a 303 to the same request as a GET."""
    client = await oidc_client(registry)
    params = {"client_id": client.client_id, "post_logout_redirect_uri": AFTER, "state": "p"}

    response = await logout(http, "POST", **params)

    assert response.status == 303
    assert response.headers["Location"] == f"{LOGOUT}?{urlencode(params)}"


async def test_another_sites_confirmation_post_clears_no_cookie(
    http: TestClient, registry: Registry, user: User
) -> None:
    """Another site's form POST arrives without the SameSite=Lax cookie; its answer must not
    delete the cookie either (a sign-out without the CSRF token)."""
    key, _ = await signed_in(http, registry, user)

    async with ClientSession() as elsewhere:  # a browser request without the session cookie
        response = await elsewhere.post(http.make_url(LOGOUT), data={"confirm": "yes"}, allow_redirects=False)
        assert response.status == 200
        assert "Set-Cookie" not in response.headers

    assert await registry.sessions.get(key) is not None


# -- Back-Channel Logout 1.0 ------------------------------------------------------------------------


async def test_clients_of_the_session_receive_a_verifiable_logout_token(
    http: TestClient, registry: Registry, user: User, rp: RelyingParty
) -> None:
    rs256 = await oidc_client(
        registry, backchannel_logout_uri=rp.url, backchannel_logout_session_required=True
    )
    es256 = await oidc_client(
        registry,
        name="Pairwise ES256",
        backchannel_logout_uri=rp.url,
        id_token_signed_response_alg="ES256",
        subject_type="pairwise",
        sector_identifier="printer.example",
    )
    silent = await oidc_client(registry, name="No back-channel")
    absent = await oidc_client(registry, name="Not in the session", backchannel_logout_uri=rp.url)
    key, session = await signed_in(http, registry, user)
    for client in (rs256, es256, silent):
        await registry.sessions.note_client(session.sid or "", client.client_id)

    response = await logout(
        http, id_token_hint=await id_token(registry, rs256, user, session), post_logout_redirect_uri=AFTER
    )
    assert response.status == 302

    await rp.wait_for(2)
    await asyncio.sleep(0.3)
    assert len(rp.received) == 2  # not the client without a URI, nor the one not in the session
    tokens = {}
    for form in rp.received:
        assert set(form) == {"logout_token"}
        aud = jwt.decode(form["logout_token"], options={"verify_signature": False})["aud"]
        tokens[aud] = form["logout_token"]
    assert set(tokens) == {rs256.client_id, es256.client_id}
    assert absent.client_id not in tokens
    for client, alg in ((rs256, "RS256"), (es256, "ES256")):
        header, claims = await verified(http, client, tokens[client.client_id])
        assert header["typ"] == "logout+jwt" and header["alg"] == alg
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}
        assert claims["sid"] == session.sid
        assert claims["sub"] == await registry.subjects.for_client(client, user.subject)
        assert "nonce" not in claims
        assert claims["exp"] - claims["iat"] == LOGOUT_TOKEN_TTL
        assert claims["jti"]
    assert tokens and (await registry.subjects.for_client(es256, user.subject)) != user.subject
    assert await _pending_for(registry, rs256, es256, silent) == []
    ended = next(e for e in await registry.audit.recent("session.ended") if e.subject == user.subject)
    assert sorted(ended.details["clients"]) == sorted([rs256.client_id, es256.client_id, silent.client_id])
    assert await registry.sessions.get(key) is None


async def _pending_for(registry: Registry, *clients: Client) -> list[Delivery]:
    """This test's deliveries still queued (the app's queue is shared by every test of the run)."""
    ids = {client.client_id for client in clients}
    return [
        delivery for delivery, _ in await registry.logout_deliveries.pending() if delivery.client_id in ids
    ]


async def test_signing_out_at_tessera_tells_the_clients_too(
    http: TestClient, registry: Registry, user: User, rp: RelyingParty
) -> None:
    client = await oidc_client(registry, backchannel_logout_uri=rp.url)
    key, session = await signed_in(http, registry, user)
    await registry.sessions.note_client(session.sid or "", client.client_id)
    page = await http.get("/login")
    csrf = hidden(await page.text(), "csrf_token")

    response = await http.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)

    assert response.status == 303
    assert await registry.sessions.get(key) is None
    await rp.wait_for(1)
    _, claims = await verified(http, client, rp.received[0]["logout_token"])
    assert claims["sid"] == session.sid and claims["sub"] == user.subject
    ended = next(e for e in await registry.audit.recent("session.ended") if e.subject == user.subject)
    assert ended.details["via"] == "logout"


async def test_a_failing_client_gets_the_token_on_a_retry(
    http: TestClient, registry: Registry, user: User, rp: RelyingParty
) -> None:
    registry.logout_deliveries.backoff = Backoff(first=0.2)
    rp.statuses = [500, 429]
    client = await oidc_client(registry, backchannel_logout_uri=rp.url)
    _, session = await signed_in(http, registry, user)
    await registry.sessions.note_client(session.sid or "", client.client_id)

    await logout(http, id_token_hint=await id_token(registry, client, user, session))

    await rp.wait_for(3)
    assert rp.answered == [500, 429, 200]
    tokens = [form["logout_token"] for form in rp.received]
    jtis = {(await verified(http, client, token))[1]["jti"] for token in tokens}
    assert len(jtis) == 3  # each attempt signs a fresh token
    await asyncio.sleep(0.1)
    assert await _pending_for(registry, client) == []


async def test_a_client_refusing_the_token_is_given_up_at_once(
    registry: Registry, redis: Redis, rp: RelyingParty, user: User
) -> None:
    client = await oidc_client(registry, backchannel_logout_uri=rp.url)
    worker_registry, store = own_store(registry, redis, first=0.05)
    rp.statuses = [400]
    await store.enqueue(Delivery(client.client_id, user.subject, "sid-400", user_id=user.subject))

    stop, task = await run_worker(worker_registry, poll=0.05)
    await rp.wait_for(1)
    await asyncio.sleep(0.3)
    await stop_worker(stop, task)

    assert rp.answered == [400]
    assert await store.pending() == []
    failed = [
        e for e in await registry.audit.recent("logout.delivery_failed") if e.client_id == client.client_id
    ]
    assert failed and "400" in failed[0].details["reason"] and failed[0].subject == user.subject


async def test_deliveries_are_given_up_after_the_last_attempt(
    registry: Registry, redis: Redis, rp: RelyingParty, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    client = await oidc_client(registry, backchannel_logout_uri=rp.url)
    worker_registry, store = own_store(registry, redis, first=0.05, attempts=3)
    rp.statuses = [503] * 10
    await store.enqueue(Delivery(client.client_id, user.subject, "sid-503", user_id=user.subject))

    stop, task = await run_worker(worker_registry, poll=0.05)
    await rp.wait_for(3)
    await asyncio.sleep(0.5)
    await stop_worker(stop, task)

    assert rp.answered == [503, 503, 503]
    assert await store.pending() == []
    assert any("given up" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    failed = [
        e for e in await registry.audit.recent("logout.delivery_failed") if e.client_id == client.client_id
    ]
    assert failed and failed[0].details["attempts"] == 3
    assert all("eyJ" not in r.getMessage() for r in caplog.records)  # no token is ever logged


async def test_a_delivery_claimed_by_a_dead_worker_is_delivered_after_the_lease(
    registry: Registry, redis: Redis, rp: RelyingParty, user: User
) -> None:
    client = await oidc_client(registry, backchannel_logout_uri=rp.url)
    worker_registry, store = own_store(registry, redis)
    queued = await store.enqueue(Delivery(client.client_id, user.subject, "sid-dead", user_id=user.subject))
    dead_claim = await store.claim(lease=1.5)  # claimed, then the replica dies: never acknowledged
    assert [c.delivery.id for c in dead_claim] == [queued.id]
    assert await store.claim() == []  # nobody else may take it during the lease

    stop, task = await run_worker(worker_registry, poll=0.1)
    try:
        await asyncio.sleep(0.8)
        assert rp.received == []
        await rp.wait_for(1, seconds=5)
    finally:
        await stop_worker(stop, task)

    _, claims = await verified_raw(registry, client, rp.received[0]["logout_token"])
    assert claims["sid"] == "sid-dead"
    assert await store.pending() == []
    # the dead worker, come back, cannot reschedule what another finished
    assert await store.retry_later(dead_claim[0], 1.0) is False


async def test_a_worker_cancelled_mid_delivery_loses_nothing(
    registry: Registry, redis: Redis, rp: RelyingParty, user: User
) -> None:
    client = await oidc_client(registry, backchannel_logout_uri=rp.url)
    worker_registry, store = own_store(registry, redis)
    rp.delay = 3.0  # the first POST hangs
    await store.enqueue(Delivery(client.client_id, user.subject, "sid-cancel", user_id=user.subject))

    _, first = await run_worker(worker_registry, poll=0.05, lease=1.0)
    await asyncio.wait_for(rp.arrived.wait(), 5)
    first.cancel()
    async with asyncio.timeout(2):
        with pytest.raises(asyncio.CancelledError):
            await first
    assert len(await store.pending()) == 1

    stop, second = await run_worker(worker_registry, poll=0.1)
    try:
        await rp.wait_for(2)  # the second worker's delivery, and the hung first one's late answer
    finally:
        await stop_worker(stop, second)
    assert await store.pending() == []
    assert rp.received[1]["logout_token"]


async def test_the_worker_outlives_a_redis_outage_and_stops_when_asked(registry: Registry) -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    broken = replace(
        registry, logout_deliveries=LogoutDeliveryStore(unreachable, Keys("tessera-test-logout-x:"))
    )
    try:
        stop, task = await run_worker(broken, poll=0.05)
        await asyncio.sleep(0.5)
        assert not task.done()
        await stop_worker(stop, task)
    finally:
        await unreachable.aclose()


async def test_a_client_no_longer_registered_for_back_channel_is_dropped(
    registry: Registry, redis: Redis, user: User
) -> None:
    client = await oidc_client(registry)  # no backchannel_logout_uri
    worker_registry, store = own_store(registry, redis)
    await store.enqueue(Delivery(client.client_id, user.subject, "sid", user_id=user.subject))
    claimed = await store.claim()
    async with Fetcher(allow_private=True) as fetcher:
        await deliver(worker_registry, fetcher, claimed[0])
    assert await store.pending() == []


async def verified_raw(
    registry: Registry, client: Client, token: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Like :func:`verified`, with the key ring's public key (no HTTP client at hand)."""
    header = jwt.get_unverified_header(token)
    key = registry.keyring.verification_key(header["kid"])
    assert key is not None
    claims = jwt.decode(token, key, algorithms=[header["alg"]], audience=client.client_id)
    return header, claims


# -- the guarded POST -------------------------------------------------------------------------------


async def test_post_form_keeps_every_guard_of_the_fetcher(rp: RelyingParty) -> None:
    async with Fetcher() as strict:
        with pytest.raises(FetchRefused):
            await strict.post_form(rp.url, {"logout_token": "x"})  # plain http, loopback
        with pytest.raises(FetchRefused):
            await strict.post_form("https://127.0.0.1/backchannel", {"logout_token": "x"})
    assert rp.received == []
    async with Fetcher(allow_private=True) as fetcher:
        rp.statuses = [400]
        answered = await fetcher.post_form(rp.url, {"logout_token": "x"})
        assert answered.status == 400  # every status comes back, for the caller to judge
        assert rp.received == [{"logout_token": "x"}]
        with pytest.raises(FetchError, match="redirects"):
            await fetcher.post_form(rp.url.replace("/backchannel", "/moved"), {"logout_token": "x"})
        assert len(rp.received) == 1  # the redirect was not followed
    async with Fetcher(allow_private=True, timeout=0.5) as impatient:
        rp.delay, rp.received = 2.0, []
        with pytest.raises(FetchError, match="no answer within"):
            await impatient.post_form(rp.url, {"logout_token": "x"})
