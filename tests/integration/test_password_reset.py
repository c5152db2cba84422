"""Password reset (issue 18), end to end through a real SMTP server (aiosmtpd): asked for by
username or address, the link mailed, the new password set; the link single-use, short-lived and
dead once the password changes; every session ended and every refresh token revoked; and no answer
or argon2 work that tells whether an account exists."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from redis.asyncio import Redis

from auth_server.crypto import hash_password, hexdigest
from auth_server.mail.catcher import Caught, MailCatcher
from auth_server.registry import Registry
from auth_server.stores.users import User
from shared.redis import Keys
from tests.conformance.support import code_flow, openid_client
from tests.support.accounts import (
    STRONG_PASSWORD,
    address,
    ask,
    follow,
    link,
    mail,
    message_of,
    new_name,
    until,
)
from tests.support.flow import basic, hidden, sign_in
from tests.support.servers import PASSWORD, AppFactory, registry_of
from tests.support.services import Services

__all__ = ["mail"]  # the fixture

NEW_PASSWORD = "lantern orchard pebble ninety"


@pytest.fixture
async def reset_app(app_with: AppFactory, mail: MailCatcher) -> TestClient:
    """The authorization server sending its mail to the catcher (sign-up need not be on)."""
    return await app_with(smtp_url=mail.url)


async def member(registry: Registry, *, verified: bool = True) -> tuple[User, str]:
    """A user with an email address (confirmed, unless ``verified`` is false), and the address."""
    name = new_name()
    user = await registry.users.create(name, hash_password(PASSWORD))
    email = address(new_name())
    await registry.users.set_profile(user.user_id, {"email": email, "email_verified": verified})
    return user, email


async def reset_mail(http: TestClient, mail: MailCatcher, typed: str, email: str, count: int = 1) -> Caught:
    answer = await ask(http, "/password-reset", typed)
    assert answer.status == 303 and answer.headers["Location"] == "/password-reset/sent"
    return await mail.wait_for(email, count=count, where=lambda c: "/password-reset/new" in c.text)


async def set_password(
    http: TestClient, caught: Caught, password: str, again: str | None = None
) -> ClientResponse:
    return await follow(
        http,
        caught,
        "/password-reset/new",
        password=password,
        password_again=password if again is None else again,
    )


async def signs_in(http: TestClient, username: str, password: str) -> bool:
    http.session.cookie_jar.clear()
    return await sign_in(http, username, password) == 303


@pytest.fixture
def argon2_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counted = {"hash": 0, "verify": 0}
    hash_, verify = PasswordHasher.hash, PasswordHasher.verify

    def hash_spy(self: PasswordHasher, password: str | bytes, *, salt: bytes | None = None) -> str:
        counted["hash"] += 1
        return hash_(self, password, salt=salt)

    def verify_spy(self: PasswordHasher, encoded: str | bytes, password: str | bytes) -> Literal[True]:
        counted["verify"] += 1
        return verify(self, encoded, password)

    monkeypatch.setattr(PasswordHasher, "hash", hash_spy)
    monkeypatch.setattr(PasswordHasher, "verify", verify_spy)
    return counted


# -- the whole way --------------------------------------------------------------------------------------


async def test_reset_by_username_ends_every_session_and_grant(
    reset_app: TestClient, mail: MailCatcher
) -> None:
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    # she is signed in, and an app holds a refresh token of hers
    client, secret = await openid_client(registry)
    login = await code_flow(http, client, secret, user, scope="openid offline_access")
    refresh_token = login.tokens["refresh_token"]
    assert len(await registry.sessions.signed_in(user.subject)) == 1

    caught = await reset_mail(http, mail, user.username, email)
    assert caught.subject == "Set a new password for Tessera"
    assert f"Hello {user.username}," in caught.text and "for 30 minutes" in caught.text
    form = await http.get(link(caught, "/password-reset/new"))
    assert form.status == 200 and f'value="{user.username}"' in await form.text()

    done = await set_password(http, caught, NEW_PASSWORD)
    assert done.status == 200 and 'data-state="done"' in await done.text()
    assert await registry.sessions.signed_in(user.subject) == []
    refreshed = await http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic(client.client_id, secret),
    )
    assert refreshed.status == 400 and (await refreshed.json())["error"] == "invalid_grant"
    assert not await signs_in(http, user.username, PASSWORD)
    assert await signs_in(http, user.username, NEW_PASSWORD)
    changed = await mail.wait_for(email, where=lambda c: "was changed" in c.subject)
    assert changed.subject == "Your Tessera password was changed"


async def test_reset_by_email_address_in_any_case(reset_app: TestClient, mail: MailCatcher) -> None:
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    caught = await reset_mail(http, mail, email.upper(), email)
    assert (await set_password(http, caught, NEW_PASSWORD)).status == 200
    assert await signs_in(http, user.username, NEW_PASSWORD)


async def test_the_new_password_follows_the_rules_and_the_link_survives_a_refusal(
    reset_app: TestClient, mail: MailCatcher
) -> None:
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    caught = await reset_mail(http, mail, user.username, email)
    weak = await set_password(http, caught, "password123")
    page = await weak.text()
    assert weak.status == 400 and "one of the most common ones" in message_of(page)
    assert "password123" not in page
    named = await set_password(http, caught, f"{user.username} forever")
    assert named.status == 400 and "must not contain your username" in message_of(await named.text())
    different = await set_password(http, caught, NEW_PASSWORD, again=STRONG_PASSWORD)
    assert different.status == 400 and "are not the same" in message_of(await different.text())
    assert (await set_password(http, caught, NEW_PASSWORD)).status == 200  # still good after all that


# -- the link ------------------------------------------------------------------------------------------


async def test_a_reset_link_works_once(reset_app: TestClient, mail: MailCatcher) -> None:
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    caught = await reset_mail(http, mail, user.username, email)
    form = await (await http.get(link(caught, "/password-reset/new"))).text()
    assert (await set_password(http, caught, NEW_PASSWORD)).status == 200
    reopened = await http.get(link(caught, "/password-reset/new"))
    assert reopened.status == 400 and 'data-state="expired"' in await reopened.text()
    # the form kept open in another tab, sent again
    replay = await http.post(
        "/password-reset/new",
        data={
            "csrf_token": hidden(form, "csrf_token"),
            "token": hidden(form, "token"),
            "password": STRONG_PASSWORD,
            "password_again": STRONG_PASSWORD,
        },
    )
    assert replay.status == 400 and 'data-state="expired"' in await replay.text()
    assert await signs_in(http, user.username, NEW_PASSWORD)


async def test_a_reset_link_expires(reset_app: TestClient, mail: MailCatcher, backing: Services) -> None:
    """It lives TESSERA_PASSWORD_RESET_TTL (30 minutes) in Redis, stored as its hash only."""
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    caught = await reset_mail(http, mail, user.username, email)
    token = link(caught, "/password-reset/new").split("token=", 1)[1]
    key = Keys(registry.settings.redis_prefix)("account-token-reset-password", hexdigest(token))
    redis = Redis.from_url(backing.redis_url)
    try:
        assert token.encode() not in (await redis.get(key) or b"")  # the hash is the key; no token in it
        assert 1790 <= await redis.ttl(key) <= 1800
        await redis.pexpire(key, 1)  # half an hour later
        await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    expired = await http.get(link(caught, "/password-reset/new"))
    assert expired.status == 400 and 'data-state="expired"' in await expired.text()
    assert await signs_in(http, user.username, PASSWORD)


async def test_a_password_change_kills_older_links(reset_app: TestClient, mail: MailCatcher) -> None:
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    first = await reset_mail(http, mail, user.username, email)
    second = await reset_mail(http, mail, email, email, count=2)
    assert link(first, "/password-reset/new") != link(second, "/password-reset/new")
    assert (await set_password(http, second, NEW_PASSWORD)).status == 200
    stale = await http.get(link(first, "/password-reset/new"))
    assert stale.status == 400 and 'data-state="expired"' in await stale.text()


# -- no user enumeration ----------------------------------------------------------------------------


def _comparable(response: ClientResponse, body: bytes) -> tuple[Any, ...]:
    headers = sorted(
        (name.lower(), value.split("=", 1)[0] if name.lower() == "set-cookie" else value)
        for name, value in response.headers.items()
        if name.lower() not in ("date", "x-request-id")
    )
    return response.status, headers, body


@pytest.mark.parametrize("by", ["username", "email"])
async def test_the_answer_never_tells_whether_an_account_exists(
    reset_app: TestClient, mail: MailCatcher, argon2_work: dict[str, int], by: str
) -> None:
    http, registry = reset_app, registry_of(reset_app)
    user, email = await member(registry)
    unconfirmed, unconfirmed_email = await member(registry, verified=False)
    known = {"username": user.username, "email": email}[by]
    strangers = {"username": new_name(), "email": address(new_name())}[by]
    other = {"username": unconfirmed.username, "email": unconfirmed_email}[by]
    answers = []
    for typed in (known, strangers, other):
        argon2_work.update(hash=0, verify=0)
        answer = await ask(http, "/password-reset", typed)
        sent = await http.get(answer.headers["Location"])
        answers.append(
            (
                _comparable(answer, await answer.read()),
                _comparable(sent, await sent.read()),
                dict(argon2_work),
            )
        )
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][2] == {"hash": 0, "verify": 0}
    await mail.wait_for(email)
    await until(_queue_empty(registry), what="the worker's look-ups")
    await asyncio.sleep(0.2)
    assert mail.to(unconfirmed_email) == []  # an unconfirmed address gets no reset link
    assert [c.rcpt_tos for c in mail.caught] == [(email,)]


def _queue_empty(registry: Registry) -> Any:
    async def empty() -> bool:
        return not await registry.outbox.pending()

    return empty


async def test_the_request_needs_its_csrf_token_and_something_typed(reset_app: TestClient) -> None:
    http = reset_app
    answer = await http.post("/password-reset", data={"identifier": "someone"})
    assert answer.status == 400 and "This form expired" in message_of(await answer.text())
    empty = await ask(http, "/password-reset", "   ")
    assert empty.status == 400 and "Enter your username or your email address" in message_of(
        await empty.text()
    )


# -- budgets --------------------------------------------------------------------------------------------


async def test_reset_requests_per_address_typed(app_with: AppFactory, mail: MailCatcher) -> None:
    http = await app_with(smtp_url=mail.url, rate_reset_per_email=2)
    email = address(new_name())
    for typed in (email, email.upper()):
        assert (await ask(http, "/password-reset", typed)).status == 303
    refused = await ask(http, "/password-reset", f" {email.title()} ")
    page = await refused.text()
    assert refused.status == 429 and 0 < int(refused.headers["Retry-After"]) <= 3601
    assert "Too many requests" in message_of(page) and f'value="{email.title()}"' in page
    assert (await ask(http, "/password-reset", address(new_name()))).status == 303


async def test_reset_requests_per_client_address(app_with: AppFactory, mail: MailCatcher) -> None:
    http = await app_with(smtp_url=mail.url, rate_account_mail_per_ip=3)
    for path in ("/password-reset", "/signup/resend", "/password-reset"):
        assert (await ask(http, path, new_name())).status == 303
    assert (await ask(http, "/password-reset", new_name())).status == 429
    assert (await ask(http, "/signup/resend", new_name())).status == 429


async def test_the_login_page_leads_to_the_reset(reset_app: TestClient) -> None:
    page = await (await reset_app.get("/login")).text()
    assert '<a href="/password-reset">Forgot your password?</a>' in page
    form = await reset_app.get("/password-reset")
    html = await form.text()
    assert form.status == 200 and '<label for="identifier">Username or email address</label>' in html
    assert form.headers["X-Frame-Options"] == "DENY"
