"""The flows the soak's workers run, each as a client of Tessera would run it.

* ``client_credentials``: a partner's token, sometimes introspected by a resource server, sometimes
  revoked (and then introspected again, which must say inactive).
* ``password``: a first-party app's password grant, then a few refresh-token rotations.
* ``authorization_code``: a person's browser through /authorize → login → consent → redirect, then
  the client's code exchange with PKCE, then rotations.

Both refresh flows then introspect their token now and then, and revoke the family about half of
the time, leaving the rest live for the final checks. Every family a flow receives is kept in the
:class:`Ledger` with what the flow believes about its last token. A rotation that failed is retried
with the same token, as a real client does: if the failure hid a committed rotation, the retry is
a reuse and revokes the family. That is the policy, so it is recorded (``REUSED``), not an error.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tests.soak.driver import Driver, Reply, Validator
from tests.soak.seed import PASSWORD, Credentials, Seed
from tests.support.flow import REDIRECT_URI, Pkce, authorize_params, hidden, query_of

TOKEN, REVOKE, INTROSPECT = "/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"


class Held(enum.Enum):
    """What a flow believes about the last refresh token it received for a family."""

    LIVE = "live"
    REVOKED = "revoked by the client"  # the flow revoked it (RFC 7009)
    REUSED = "revoked after a lost answer"  # a failed rotation had committed; its retry was a reuse
    REFUSED = "refused unexpectedly"  # an error, already recorded as such
    UNSETTLED = "unsettled"  # rotation retries ran out: recovery never came


@dataclass
class Family:
    flow: str
    client: Credentials
    token: str
    held: Held = Held.LIVE


@dataclass
class Ledger:
    """What the load was handed and must find again afterwards."""

    families: list[Family] = field(default_factory=list)
    revoked_access: list[str] = field(default_factory=list)


@dataclass
class Flows:
    driver: Driver
    session: aiohttp.ClientSession
    seed: Seed
    ledger: Ledger
    settle: float  # how long a rotation or revocation is retried through failures

    def chance(self, p: float) -> bool:
        return self.driver.rng.random() < p

    async def client_credentials(self) -> None:
        flow, partner = "client_credentials", self.seed.partner
        reply = await self._post(
            flow, "token", TOKEN, {"grant_type": "client_credentials"}, partner, validate=_has("access_token")
        )
        if not reply.ok:
            return
        access = reply.body["access_token"]
        if self.chance(0.3):
            await self._introspect(flow, access, active=True)
        if self.chance(0.2):
            form = {"token": access, "token_type_hint": "access_token"}
            if (await self._post(flow, "revoke", REVOKE, form, partner)).ok:
                self.ledger.revoked_access.append(access)
                await self._introspect(flow, access, active=False)

    async def password(self) -> None:
        client = self.seed.first_party
        form = {"grant_type": "password", "username": self._username(), "password": PASSWORD}
        reply = await self._post("password", "password", TOKEN, form, client, validate=_has("refresh_token"))
        if reply.ok:
            await self._keep(Family("password", client, reply.body["refresh_token"]))

    async def authorization_code(self) -> None:
        flow, pkce, state = "authorization_code", Pkce.new(), secrets.token_urlsafe(12)
        async with self.driver.browser() as browser:
            params = authorize_params(self.seed.printer.client_id, pkce=pkce, state=state)
            redirect = await self._browse(browser, f"/oauth2/authorize?{urlencode(params)}")
        if redirect is None:
            return
        query = query_of(redirect)
        if query.get("state") != state or query.get("iss") != self.driver.issuer:
            self.driver.problem(flow, "redirect", f"state or iss wrong in {sorted(query)}")
            return
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
        }
        reply = await self._post(flow, "code", TOKEN, form, self.seed.printer, validate=_has("refresh_token"))
        if reply.ok:
            await self._keep(Family(flow, self.seed.printer, reply.body["refresh_token"]))

    async def _browse(self, browser: aiohttp.ClientSession, authorize: str) -> str | None:
        """A person's part: sign in, consent when asked; the redirect to the client, or None."""
        flow, call = "authorization_code", self.driver.call
        reply = await call(browser, flow, "authorize", "GET", authorize, expect={302}, validate=_to("/login"))
        if not reply.ok:
            return None
        return_to = query_of(reply.location)["return_to"]
        page = await call(
            browser, flow, "login_page", "GET", f"/login?{urlencode({'return_to': return_to})}",
            expect={200}, validate=_field("csrf_token"),
        )  # fmt: skip
        if not page.ok:
            return None
        form = {
            "username": self._username(),
            "password": PASSWORD,
            "csrf_token": hidden(page.text, "csrf_token"),
            "return_to": return_to,
        }
        login = await call(browser, flow, "login", "POST", "/login", expect={303}, data=form)
        if not login.ok:
            return None
        reply = await call(
            browser, flow, "authorize_signed_in", "GET", return_to, expect={200, 302}, validate=_approved
        )
        if reply.ok and reply.status == 200:
            form = {
                "csrf_token": hidden(reply.text, "csrf_token"),
                "request_id": hidden(reply.text, "request_id"),
                "consent": "allow",
            }
            reply = await call(
                browser, flow, "consent", "POST", "/consent", expect={303}, data=form, validate=_approved
            )
        return reply.location if reply.ok else None

    async def _keep(self, family: Family) -> None:
        """Rotate a family a few times; introspect it now and then; revoke it half of the time."""
        self.ledger.families.append(family)
        for _ in range(self.driver.rng.randint(1, 6)):
            if not await self._rotate(family):
                return
        if self.chance(0.3):
            await self._introspect(family.flow, family.token, active=True, hint="refresh_token")
        if self.chance(0.5) and await self._revoke(family):
            # a revoked token is refused: invalid_grant, and nothing else
            form = {"grant_type": "refresh_token", "refresh_token": family.token}
            await self._post(
                family.flow, "revoked_refresh", TOKEN, form, family.client, expect={400}, validate=_rotated
            )

    async def _rotate(self, family: Family) -> bool:
        form = {"grant_type": "refresh_token", "refresh_token": family.token}
        unanswered = False  # a failed try may have committed: then the retry is a reuse, refused
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            expect = {200, 400} if unanswered else {200}
            reply = await self._post(
                family.flow, "refresh", TOKEN, form, family.client, expect=expect, validate=_rotated
            )
            if reply.ok and reply.status == 200:
                family.token = reply.body["refresh_token"]
                return True
            if reply.status == 400:
                family.held = Held.REUSED if unanswered else Held.REFUSED
                return False
            unanswered = True
            await asyncio.sleep(0.1 + self.driver.rng.random() * 0.2)
        family.held = Held.UNSETTLED
        return False

    async def _revoke(self, family: Family) -> bool:
        """Revoke a family, retrying through failures (revoking twice is harmless, RFC 7009 §2.2)."""
        form = {"token": family.token, "token_type_hint": "refresh_token"}
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            if (await self._post(family.flow, "revoke", REVOKE, form, family.client)).ok:
                family.held = Held.REVOKED
                return True
            await asyncio.sleep(0.1 + self.driver.rng.random() * 0.2)
        family.held = Held.UNSETTLED
        return False

    async def _introspect(self, flow: str, token: str, *, active: bool, hint: str | None = None) -> None:
        form = {"token": token} | ({"token_type_hint": hint} if hint else {})
        await self._post(
            flow, "introspect", INTROSPECT, form, self.seed.introspector, validate=_active(active)
        )

    async def _post(
        self,
        flow: str,
        step: str,
        path: str,
        form: dict[str, str],
        client: Credentials,
        *,
        expect: set[int] | None = None,
        validate: Validator | None = None,
    ) -> Reply:
        return await self.driver.call(
            self.session, flow, step, "POST", path,
            expect=expect or {200}, validate=validate, data=form, headers=client.basic,
        )  # fmt: skip

    def _username(self) -> str:
        return self.driver.rng.choice(self.seed.usernames)


def _has(name: str) -> Validator:
    return lambda reply: None if isinstance(reply.body, dict) and name in reply.body else f"no {name}"


def _field(name: str) -> Validator:
    return lambda reply: None if f'name="{name}"' in reply.text else f"no {name} field"


def _to(prefix: str) -> Validator:
    return lambda reply: None if reply.location.startswith(prefix) else f"redirected to {reply.location!r}"


def _approved(reply: Reply) -> str | None:
    """The consent page (200), or the redirect back to the client with a code."""
    if reply.status == 200:
        return _field("request_id")(reply)
    if reply.location.startswith(REDIRECT_URI) and "code" in query_of(reply.location):
        return None
    return f"redirected to {reply.location!r}"


def _rotated(reply: Reply) -> str | None:
    if reply.status == 400:
        return None if _error(reply) == "invalid_grant" else f"refused with {_error(reply)}"
    return _has("refresh_token")(reply)


def _active(expected: bool) -> Validator:
    def check(reply: Reply) -> str | None:
        active = isinstance(reply.body, dict) and reply.body.get("active") is True
        return None if active == expected else f"introspection says active={active}, expected {expected}"

    return check


def _error(reply: Reply) -> Any:
    return reply.body.get("error") if isinstance(reply.body, dict) else None
