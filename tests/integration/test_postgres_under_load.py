"""PostgreSQL restarted under load: requests in flight fail cleanly (200 or a JSON 503
``temporarily_unavailable``, never another 5xx, never a hang), the pool reconnects without an app
restart, and no refresh-token family is left half-rotated, because rotation is one transaction.

Twenty workers each hold a refresh-token family of their own (from the password grant) and rotate
it as fast as they can, now and then revoking it and starting another; a few more ask for
client_credentials tokens. Meanwhile the test's own embedded PostgreSQL is stopped and started
again. A worker whose rotation got a 503 retries the same token, as a real client would: if the
lost response hid a committed rotation, that retry is a reuse and revokes the family, which is
the policy, so it is allowed and then checked in the database.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from auth_server.app import create_app
from auth_server.crypto import digest, hash_password
from auth_server.registry import Registry
from auth_server.schema import MIGRATIONS, SCHEMA
from shared import db, embedded
from tests.support.flow import basic
from tests.support.refresh_families import family_shapes, held_tokens
from tests.support.servers import PASSWORD, make_settings, registry_of
from tests.support.services import Services

Factory = Callable[..., Awaitable[TestClient]]

REFRESHERS = 20
CLIENT_CREDENTIAL_WORKERS = 6
# longer than the pool's command timeout (10 s): a request still running after this is a hang
REQUEST_TIMEOUT = 12.0
# how long a worker keeps retrying one step through 503s before it gives up (and the test fails)
STEP_DEADLINE = 15.0
OUTAGE = 1.0
REVOKED_BY_CLIENT = "revoked by the client"
REVOKED_FOR_REUSE = "refresh token reused"


class Held(enum.Enum):
    """What a worker believes about the last refresh token it received for a family."""

    LIVE = enum.auto()
    REVOKED = enum.auto()  # the worker revoked the family itself (RFC 7009)
    REUSED = enum.auto()  # a lost response hid a committed rotation; the retry revoked the family
    REFUSED = enum.auto()  # refused out of the blue: an unclean answer, reported as such


@dataclass
class Family:
    token: str
    held: Held = Held.LIVE


@dataclass(frozen=True)
class Answer:
    """One response (or a timeout, status 0) and when its request started and ended."""

    kind: str
    status: int
    error: str | None
    started: float
    ended: float
    allowed_refusal: bool = False

    @property
    def summary(self) -> tuple[str, int, str | None]:
        return self.kind, self.status, self.error

    @property
    def clean(self) -> bool:
        return self.status == 200 or (self.status == 503 and self.error == "temporarily_unavailable")


@dataclass
class Load:
    """The shared record of every worker: answers, families, and when to stop."""

    http: TestClient
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answers: list[Answer] = field(default_factory=list)
    families: list[Family] = field(default_factory=list)
    rotated_at: dict[int, float] = field(default_factory=dict)  # worker -> its last successful rotation

    async def post(
        self, kind: str, path: str, form: dict[str, str], auth: dict[str, str], *, refusal_ok: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """POST with a hard timeout; record the answer. ``refusal_ok``: a 400 here is the policy."""
        started = time.monotonic()
        status, body = 0, {}
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                response = await self.http.post(path, data=form, headers=auth)
                status = response.status
                if response.content_type == "application/json":
                    body = await response.json()
                else:
                    await response.read()
        except TimeoutError:
            status = 0
        error = body.get("error") if isinstance(body, dict) else None
        allowed = refusal_ok and status == 400 and error == "invalid_grant"
        self.answers.append(Answer(kind, status, error, started, time.monotonic(), allowed))
        return status, body

    def unclean(self) -> list[Answer]:
        return [a for a in self.answers if not a.clean and not a.allowed_refusal]


async def test_postgres_restart_under_load_loses_nothing(
    aiohttp_client: Factory, own_postgres: Path, backing: Services, redis_prefix: str
) -> None:
    url = await asyncio.to_thread(embedded.postgres_url, own_postgres, "under_load")
    await db.migrate(url, SCHEMA, MIGRATIONS)
    http = await aiohttp_client(create_app(make_settings(url, backing.redis_url, redis_prefix)))
    password_auth, partner_auth, username = await _seed(registry_of(http))
    load = Load(http)

    workers = [
        asyncio.create_task(_refresher(load, n, password_auth, username)) for n in range(REFRESHERS)
    ] + [
        asyncio.create_task(_client_credentials(load, partner_auth)) for _ in range(CLIENT_CREDENTIAL_WORKERS)
    ]
    try:
        await _until(lambda: len(load.rotated_at) == REFRESHERS, "every worker rotating")
        await asyncio.sleep(0.5)
        stopped = time.monotonic()
        await asyncio.to_thread(embedded.stop, own_postgres)
        await asyncio.sleep(OUTAGE)
        assert await asyncio.to_thread(embedded.postgres_url, own_postgres, "under_load") == url
        back = time.monotonic()
        await _until(
            lambda: all(t > back for t in load.rotated_at.values()), "every worker rotating after the restart"
        )
        await asyncio.sleep(0.5)
    finally:
        load.stop.set()
        done, pending = await asyncio.wait(workers, timeout=STEP_DEADLINE + REQUEST_TIMEOUT)
        for task in pending:
            task.cancel()
    assert not pending, "a worker hung"
    for task in done:
        task.result()  # a worker's own assertion fails the test here

    unclean = load.unclean()
    assert not unclean, f"unclean answers (kind, status, error): {Counter(a.summary for a in unclean)}"
    outage_503s = [a for a in load.answers if a.status == 503 and a.ended >= stopped]
    assert outage_503s, "no request met the outage: the test did not test it"
    conn = await asyncpg.connect(url)
    try:
        await _assert_no_half_rotated_family(conn, load.families)
        await _assert_held_tokens_match_the_database(conn, load.families)
    finally:
        await conn.close()
    await _assert_live_tokens_still_work(load, password_auth)
    assert (await http.get("/readyz")).status == 200  # the same app, never restarted, is whole again


async def _seed(registry: Registry) -> tuple[dict[str, str], dict[str, str], str]:
    """A first-party password client, a B2B partner and one user; their Basic auth headers."""
    app, app_secret = await registry.clients.create(
        name="First-party app",
        redirect_uris=[],
        grant_types=["password", "refresh_token"],
        scope=["photos:read"],
        auth_method="client_secret_basic",
    )
    partner, partner_secret = await registry.clients.create(
        name="Partner",
        redirect_uris=[],
        grant_types=["client_credentials"],
        scope=["warehouse:stats"],
        auth_method="client_secret_basic",
    )
    assert app_secret and partner_secret
    user = await registry.users.create("under-load", await asyncio.to_thread(hash_password, PASSWORD))
    return basic(app.client_id, app_secret), basic(partner.client_id, partner_secret), user.username


async def _refresher(load: Load, worker: int, auth: dict[str, str], username: str) -> None:
    """Start a family, rotate it some times, revoke it; again, until told to stop."""
    cycle = 0
    while not load.stop.is_set():
        family = await _start_family(load, auth, username)
        load.families.append(family)
        cycle += 1
        for _ in range(8 + (worker * 7 + cycle * 5) % 25):
            if load.stop.is_set():
                return
            await _rotate(load, worker, family, auth)
            if family.held is not Held.LIVE:
                break
        else:
            await _revoke(load, family, auth)


async def _start_family(load: Load, auth: dict[str, str], username: str) -> Family:
    form = {"grant_type": "password", "username": username, "password": PASSWORD}
    deadline = time.monotonic() + STEP_DEADLINE
    while time.monotonic() < deadline:
        status, body = await load.post("password", "/oauth2/token", form, auth)
        if status == 200:
            return Family(body["refresh_token"])
        await asyncio.sleep(0.05)
    raise AssertionError("the password grant never recovered")


async def _rotate(load: Load, worker: int, family: Family, auth: dict[str, str]) -> None:
    """Exchange the family's token for its successor, retrying the same token after a failure.

    After a failure (a 503, or an unclean answer the assertions will report) the rotation may
    have committed unseen; then the retry is a reuse, and the refusal is the policy.
    """
    form = {"grant_type": "refresh_token", "refresh_token": family.token}
    deadline = time.monotonic() + STEP_DEADLINE
    unanswered = False
    while time.monotonic() < deadline:
        status, body = await load.post("refresh", "/oauth2/token", form, auth, refusal_ok=unanswered)
        if status == 200:
            family.token = body["refresh_token"]
            load.rotated_at[worker] = time.monotonic()
            return
        if status == 400:
            family.held = Held.REUSED if unanswered else Held.REFUSED
            return
        unanswered = True
        await asyncio.sleep(0.05)
    raise AssertionError("refresh-token rotation never recovered")


async def _revoke(load: Load, family: Family, auth: dict[str, str]) -> None:
    form = {"token": family.token, "token_type_hint": "refresh_token"}
    deadline = time.monotonic() + STEP_DEADLINE
    while time.monotonic() < deadline:
        status, _ = await load.post("revoke", "/oauth2/revoke", form, auth)
        if status == 200:
            family.held = Held.REVOKED
            return
        await asyncio.sleep(0.05)
    raise AssertionError("revocation never recovered")


async def _client_credentials(load: Load, auth: dict[str, str]) -> None:
    while not load.stop.is_set():
        status, _ = await load.post(
            "client_credentials", "/oauth2/token", {"grant_type": "client_credentials"}, auth
        )
        if status != 200:
            await asyncio.sleep(0.05)


async def _assert_no_half_rotated_family(conn: asyncpg.Connection, families: list[Family]) -> None:
    """Every family: exactly one unused token, every used one pointing at a successor in the family."""
    rows = await family_shapes(conn)
    assert len(rows) >= len(families)  # more when a password grant committed but its answer was lost
    half = [dict(r) for r in rows if r["unused"] != 1 or r["dangling"] != 0]
    assert not half, f"half-rotated families: {half[:5]}"
    reasons = {r["revoked_reason"] for r in rows} - {None, REVOKED_BY_CLIENT, REVOKED_FOR_REUSE}
    assert not reasons, f"families revoked for unexpected reasons: {reasons}"
    reused = sum(r["revoked_reason"] == REVOKED_FOR_REUSE for r in rows)
    assert reused == sum(f.held is Held.REUSED for f in families), "a family was revoked as reused unseen"


async def _assert_held_tokens_match_the_database(conn: asyncpg.Connection, families: list[Family]) -> None:
    """The last token each worker received is unused in a live family, or its family is revoked."""
    found = await held_tokens(conn, (f.token for f in families))
    expected_reason = {Held.LIVE: None, Held.REVOKED: REVOKED_BY_CLIENT, Held.REUSED: REVOKED_FOR_REUSE}
    for family in families:
        if family.held is Held.REFUSED:
            continue  # already reported as an unclean answer
        row = found.get(digest(family.token))
        assert row is not None, "a token a worker received is not in the database"
        assert row["revoked_reason"] == expected_reason[family.held], (family.held, row["revoked_reason"])
        if family.held is Held.LIVE:
            assert row["rotated_at"] is None, "a worker's current token was rotated behind its back"


async def _assert_live_tokens_still_work(load: Load, auth: dict[str, str]) -> None:
    for family in load.families:
        if family.held is Held.LIVE:
            form = {"grant_type": "refresh_token", "refresh_token": family.token}
            response = await load.http.post("/oauth2/token", data=form, headers=auth)
            assert response.status == 200, await response.text()


async def _until(check: Callable[[], bool], what: str, seconds: float = STEP_DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
