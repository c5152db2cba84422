"""Sign-up and email verification (issue 18), end to end: the form, the mail a real SMTP server
catches (aiosmtpd, never a mocked sender), the link followed, and what ID tokens and userinfo then
say; no user enumeration through sign-up; the settings that turn it off or narrow it; the
budgets; and the mail queue surviving a restart and a mail server that is down."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from redis.asyncio import Redis

from auth_server.app import create_app
from auth_server.mail.catcher import MailCatcher
from auth_server.registry import Registry
from auth_server.stores.due_queue import Backoff
from auth_server.stores.users import Profile
from tests.conformance.support import code_flow, openid_client, userinfo_claims
from tests.support.accounts import address, ask, follow, link, mail, message_of, new_name, sign_up, until
from tests.support.flow import hidden
from tests.support.servers import PASSWORD, AppFactory, free_port, make_settings, registry_of
from tests.support.services import Services

__all__ = ["mail"]  # the fixture

WAIT = 10.0


@pytest.fixture
async def accounts_app(app_with: AppFactory, mail: MailCatcher) -> TestClient:
    """The authorization server with sign-up on, sending its mail to the catcher."""
    return await app_with(signup="on", smtp_url=mail.url)


@pytest.fixture
def argon2_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many argon2 hashes are made and verified from now on (the real work still runs)."""
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


async def profile_of(registry: Registry, username: str) -> Profile:
    user = await registry.users.by_username(username)
    assert user is not None
    profile = await registry.users.profile(user.user_id)
    assert profile is not None
    return profile


async def outbox_empty(registry: Registry) -> None:
    """Until the worker has sent (or dropped) everything queued."""

    async def empty() -> bool:
        return not await registry.outbox.pending()

    await until(empty, what="sending everything queued")


def comparable(response: ClientResponse, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (but the date and request id; a cookie by its name) and body."""
    headers = sorted(
        (name.lower(), value.split("=", 1)[0] if name.lower() == "set-cookie" else value)
        for name, value in response.headers.items()
        if name.lower() not in ("date", "x-request-id")
    )
    return response.status, headers, body


# -- the whole way --------------------------------------------------------------------------------------


async def test_sign_up_then_verify_the_address_by_the_link_mailed(
    accounts_app: TestClient, mail: MailCatcher
) -> None:
    http, registry = accounts_app, registry_of(accounts_app)
    name, email = new_name(), address(new_name())
    answer = await sign_up(http, name, email, PASSWORD, nickname="小美")
    assert answer.status == 303 and answer.headers["Location"] == "/signup/sent"
    sent = await http.get("/signup/sent")
    assert sent.status == 200 and "Check your email" in await sent.text()

    caught = await mail.wait_for(email)
    assert caught.subject == "Confirm your email address for Tessera"
    assert caught.message["From"] == "Tessera <no-reply@localhost>"
    assert f"Hello {name}," in caught.text
    verify_link = link(caught, "/signup/verify")
    assert re.fullmatch(r"/signup/verify\?token=[A-Za-z0-9_-]{43}", verify_link)

    profile = await profile_of(registry, name)
    assert (profile.email, profile.email_verified, profile.nickname) == (email, False, "小美")
    # until verified, email_verified is false in the ID token and at userinfo
    client, secret = await openid_client(registry)
    claims = json.dumps({"id_token": {"email": None, "email_verified": None}})
    user = await registry.users.by_username(name)
    assert user is not None
    before = await code_flow(http, client, secret, user, scope="openid email", claims=claims)
    assert (before.id_token["email"], before.id_token["email_verified"]) == (email, False)
    info = await userinfo_claims(http, before.tokens["access_token"])
    assert (info["email"], info["email_verified"]) == (email, False)

    # the link opens a page whose button confirms: merely opening it spends nothing
    opened = await http.get(verify_link)
    page = await opened.text()
    assert opened.status == 200 and email in page and name in page
    assert (await profile_of(registry, name)).email_verified is False
    confirmed = await follow(http, caught, "/signup/verify")
    assert confirmed.status == 200
    assert 'data-state="verified"' in await confirmed.text()
    assert (await profile_of(registry, name)).email_verified is True

    after = await code_flow(http, client, secret, user, scope="openid email", claims=claims)
    assert after.id_token["email_verified"] is True
    assert (await userinfo_claims(http, after.tokens["access_token"]))["email_verified"] is True


async def test_a_verification_link_works_once(accounts_app: TestClient, mail: MailCatcher) -> None:
    http = accounts_app
    name, email = new_name(), address(new_name())
    await sign_up(http, name, email)
    caught = await mail.wait_for(email)
    assert (await follow(http, caught, "/signup/verify")).status == 200
    again = await http.get(link(caught, "/signup/verify"))
    assert again.status == 400 and 'data-state="expired"' in await again.text()
    forged = await http.get("/signup/verify?token=" + "A" * 43)
    assert forged.status == 400 and 'data-state="expired"' in await forged.text()


async def test_a_half_finished_sign_up_gets_a_new_link(accounts_app: TestClient, mail: MailCatcher) -> None:
    http, registry = accounts_app, registry_of(accounts_app)
    name, email = new_name(), address(new_name())
    await sign_up(http, name, email)
    first = await mail.wait_for(email)
    # the first mail is lost; she asks for a new link, by username (or address: both work)
    answer = await ask(http, "/signup/resend", name)
    assert answer.status == 303 and answer.headers["Location"] == "/signup/sent?again=1"
    second = await mail.wait_for(email, count=2)
    assert "You asked for a new link" in second.text
    assert link(second, "/signup/verify") != link(first, "/signup/verify")
    assert (await follow(http, second, "/signup/verify")).status == 200
    assert (await profile_of(registry, name)).email_verified is True
    # once verified, asking again sends nothing
    await ask(http, "/signup/resend", email.upper())
    await outbox_empty(registry)
    assert len(mail.to(email)) == 2


# -- no user enumeration ------------------------------------------------------------------------------


async def _sign_up_answer(http: TestClient, username: str, email: str) -> tuple[Any, ...]:
    answer = await sign_up(http, username, email)
    first = comparable(answer, await answer.read())
    page = await http.get(answer.headers["Location"])
    return first, comparable(page, await page.read())


async def test_a_taken_email_is_never_revealed(
    accounts_app: TestClient, mail: MailCatcher, argon2_work: dict[str, int]
) -> None:
    """The same answers and the same argon2 work as a fresh address; the address's owner is told
    by mail, and the new account can never confirm an address another account confirmed."""
    http = accounts_app
    owner, taken = new_name("owner"), address(new_name())
    await sign_up(http, owner, taken)
    assert (await follow(http, await mail.wait_for(taken), "/signup/verify")).status == 200

    outcomes = []
    for email in (taken, address(new_name())):
        argon2_work.update(hash=0, verify=0)
        outcomes.append((await _sign_up_answer(http, new_name("other"), email), dict(argon2_work)))
    (answers_taken, work_taken), (answers_fresh, work_fresh) = outcomes
    assert answers_taken == answers_fresh
    assert work_taken == work_fresh == {"hash": 1, "verify": 0}

    notice = await mail.wait_for(taken, count=2)
    assert notice.subject == "You already have an account at Tessera"
    assert f"Username: {owner}" in notice.text
    assert not any("/signup/verify" in url for url in notice.links)  # no link for the newcomer


async def test_a_taken_username_is_told_and_the_form_kept(
    accounts_app: TestClient, mail: MailCatcher, argon2_work: dict[str, int]
) -> None:
    """Usernames are public handles: a taken one is said (in any case or width), as on most sites."""
    http, registry = accounts_app, registry_of(accounts_app)
    name = new_name()
    await sign_up(http, name, address(new_name()))
    other_email = address(new_name())
    argon2_work.update(hash=0, verify=0)
    answer = await sign_up(http, name.upper(), other_email, nickname="Mei")
    page = await answer.text()
    assert answer.status == 400
    assert "That username is taken" in message_of(page)
    assert f'value="{name.upper()}"' in page and f'value="{other_email}"' in page and 'value="Mei"' in page
    assert PASSWORD not in page and "plum tractor" not in page  # no password is ever echoed
    assert argon2_work == {"hash": 1, "verify": 0}  # as much work as any sign-up
    assert await registry.users.with_email(other_email) == ()


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("password", "password2024!", "one of the most common ones"),
        ("password", "My {username} photos", "must not contain your username"),
        ("password", "short", "at least 8 characters"),
        ("password", "qwertyuiop", "row of keys"),
        ("password", "zzzzzzzzzzzz", "one character, or a few, repeated"),
        ("password_again", "not the same at all", "are not the same"),
        ("email", "not-an-address", "does not look like an email address"),
        ("username", "mei@photos", "cannot contain @"),
        ("username", "m" * 65, "at most 64 characters"),
    ],
)
async def test_bad_input_is_said_and_nothing_typed_is_lost(
    accounts_app: TestClient, field: str, value: str, said: str
) -> None:
    http = accounts_app
    fields = {"username": f"mei-{uuid.uuid4().hex[:6]}", "email": address(new_name()), "nickname": "小美"}
    password = "plum tractor violet seventeen"
    value = value.format(username=fields["username"].upper())
    typed = {**fields, "password": password, "password_again": password, field: value}
    if field == "password":
        typed["password_again"] = value
    answer = await sign_up(
        http,
        typed["username"],
        typed["email"],
        typed["password"],
        nickname="小美",
        again=typed["password_again"],
    )
    page = await answer.text()
    assert answer.status == 400
    assert said in message_of(page), message_of(page)
    assert 'aria-invalid="true"' in page
    for name in ("email", "nickname"):
        assert f'value="{typed[name]}"' in page
    assert password not in page and (field not in ("password", "password_again") or value not in page)
    assert await registry_of(http).users.by_username(typed["username"].strip()) is None


async def test_the_form_needs_its_csrf_token(accounts_app: TestClient) -> None:
    http = accounts_app
    name = new_name()
    answer = await http.post(
        "/signup",
        data={"username": name, "email": address(name), "password": PASSWORD, "password_again": PASSWORD},
    )
    assert answer.status == 400 and "This form expired" in message_of(await answer.text())
    assert await registry_of(http).users.by_username(name) is None


# -- settings -------------------------------------------------------------------------------------------


async def test_sign_up_off_by_default(app_with: AppFactory, mail: MailCatcher) -> None:
    """TESSERA_SIGNUP is off unless turned on: no page, no link; a reset works with mail alone."""
    http = await app_with(smtp_url=mail.url)
    assert (await http.get("/signup")).status == 404
    name = new_name()
    answer = await http.post("/signup", data={"username": name, "email": address(name), "password": PASSWORD})
    assert answer.status == 404
    login = await (await http.get("/login")).text()
    assert "Create an account" not in login and 'href="/password-reset"' in login
    bare = await app_with()  # and with no mail server: neither
    login = await (await bare.get("/login")).text()
    assert "Create an account" not in login and "Forgot your password?" not in login
    assert (await bare.get("/password-reset")).status == 404
    assert (await bare.get("/signup/resend")).status == 404


async def test_the_login_page_links_sign_up_and_reset(accounts_app: TestClient) -> None:
    back = "/oauth2/authorize?client_id=c&response_type=code"
    page = await (await accounts_app.get("/login", params={"return_to": back})).text()
    assert 'href="/password-reset">Forgot your password?</a>' in page
    assert 'href="/signup?return_to=/oauth2/authorize%3Fclient_id%3Dc%26response_type%3Dcode"' in page


async def test_only_allowed_email_domains(app_with: AppFactory, mail: MailCatcher) -> None:
    http = await app_with(
        signup="on", smtp_url=mail.url, signup_email_domains="photos.example, *.school.example"
    )
    refused = await sign_up(http, new_name(), "mei@elsewhere.example")
    assert refused.status == 400
    assert "only with an email address of photos.example, *.school.example" in message_of(
        await refused.text()
    )
    for email in (address(new_name()), f"{new_name()}@class-7.school.example"):
        assert (await sign_up(http, new_name(), email)).status == 303


async def test_every_account_page_and_answer_forbids_framing_caching_and_referers(
    accounts_app: TestClient, mail: MailCatcher
) -> None:
    """RFC 9700 §4.16 and §4.2.4, for each page and redirect of sign-up, verification and reset."""
    http = accounts_app
    name, email = new_name(), address(new_name())
    visits: list[tuple[str, str, ClientResponse]] = []

    async def go(method: str, path: str, **form: str) -> None:
        if method == "POST":
            form.setdefault("csrf_token", hidden(await (await http.get("/signup")).text(), "csrf_token"))
        response = await http.request(method, path, data=form or None, allow_redirects=False)
        visits.append((method, path.split("?")[0], response))

    await go("GET", "/signup")
    await go("POST", "/signup", username=name, email=email, password="short", password_again="short")
    await go("POST", "/signup", username=name, email=email, password=PASSWORD, password_again=PASSWORD)
    await go("GET", "/signup/sent")
    caught = await mail.wait_for(email)
    await go("GET", link(caught, "/signup/verify"))
    await go("POST", "/signup/verify", token="not-a-token")
    await go("GET", "/signup/resend")
    await go("POST", "/signup/resend", identifier=name)
    await go("GET", "/password-reset")
    await go("POST", "/password-reset", identifier=name)
    await go("GET", "/password-reset/sent")
    await go("GET", "/password-reset/new?token=not-a-token")
    await go("POST", "/password-reset/new", token="not-a-token", password=PASSWORD, password_again=PASSWORD)
    for method, path, response in visits:
        assert response.headers["X-Frame-Options"] == "DENY", (method, path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], (method, path)
        assert "no-store" in response.headers["Cache-Control"], (method, path)
        assert response.headers["Referrer-Policy"] == "no-referrer", (method, path)
    app = http.app
    assert app is not None
    ours = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.handler.__module__.endswith((".signup", ".password_reset"))
    }
    assert ours and ours <= {(method, path) for method, path, _ in visits}


# -- budgets --------------------------------------------------------------------------------------------


async def test_sign_ups_per_address_per_hour(app_with: AppFactory, mail: MailCatcher) -> None:
    http = await app_with(signup="on", smtp_url=mail.url, rate_signup_per_ip=2)
    for _ in range(2):
        assert (await sign_up(http, new_name(), address(new_name()))).status == 303
    email = address(new_name())
    refused = await sign_up(http, new_name(), email, nickname="Mei")
    page = await refused.text()
    assert refused.status == 429 and 60 < int(refused.headers["Retry-After"]) <= 3601
    assert "Too many requests" in message_of(page) and f'value="{email}"' in page


async def test_new_links_per_address_typed(app_with: AppFactory, mail: MailCatcher) -> None:
    http = await app_with(signup="on", smtp_url=mail.url, rate_verify_resend=1)
    name = new_name()
    assert (await ask(http, "/signup/resend", name)).status == 303
    again = await ask(http, "/signup/resend", name.upper())  # the same name, its canonical form
    assert again.status == 429 and "Too many requests" in message_of(await again.text())
    assert (await ask(http, "/signup/resend", new_name())).status == 303  # another's budget


async def test_mails_per_address_are_capped(app_with: AppFactory, mail: MailCatcher) -> None:
    """However they are asked for, an address gets at most TESSERA_RATE_MAIL_PER_ADDRESS an hour."""
    http = await app_with(signup="on", smtp_url=mail.url, rate_mail_per_address=2)
    email = address(new_name())
    for _ in range(3):
        assert (await sign_up(http, new_name(), email)).status == 303
    await outbox_empty(registry_of(http))
    await asyncio.sleep(0.2)
    assert len(mail.to(email)) == 2


# -- the queue ------------------------------------------------------------------------------------------


@pytest.fixture
async def shared_prefix(backing: Services) -> AsyncIterator[str]:
    """A Redis prefix two apps share (two replicas, or one before and after a restart)."""
    prefix = f"tessera-test-mail-{uuid.uuid4().hex[:8]}:"
    yield prefix
    redis = Redis.from_url(backing.redis_url)
    try:
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


async def test_queued_mail_survives_a_restart(
    aiohttp_client: AppFactory, database_url: str, backing: Services, shared_prefix: str
) -> None:
    """The mail is queued in Redis: a replica that stops before sending it (its mail server is
    down) leaves it to the next one, which sends it."""
    catcher = MailCatcher(port=free_port())  # not started yet: the first replica cannot send
    settings = make_settings(
        database_url, backing.redis_url, shared_prefix, signup="on", smtp_url=catcher.url
    )
    first = await aiohttp_client(create_app(settings))
    outbox = registry_of(first).outbox
    outbox.backoff = Backoff(first=0.5)
    name, email = new_name(), address(new_name())
    assert (await sign_up(first, name, email)).status == 303

    async def tried() -> bool:
        return any(mail.attempts >= 1 for mail, _ in await outbox.pending())

    await until(tried, what="the first replica's attempt")
    assert [mail.kind for mail, _ in await outbox.pending()] == ["signup"]
    await first.close()  # the replica stops, its mail unsent

    await catcher.start()
    try:
        second = await aiohttp_client(create_app(settings))
        caught = await catcher.wait_for(email)
        assert (await follow(second, caught, "/signup/verify")).status == 200
        assert await registry_of(second).outbox.pending() == []
    finally:
        await catcher.stop()


async def test_mail_is_retried_while_the_mail_server_is_down(app_with: AppFactory) -> None:
    catcher = MailCatcher(port=free_port())
    http = await app_with(signup="on", smtp_url=catcher.url)
    registry = registry_of(http)
    registry.outbox.backoff = Backoff(first=0.3)
    email = address(new_name())
    assert (await sign_up(http, new_name(), email)).status == 303

    async def failed_once() -> bool:
        return any(mail.attempts >= 1 for mail, _ in await registry.outbox.pending())

    await until(failed_once, what="a failed attempt")  # the first attempt fails, and is counted
    await catcher.start()
    try:
        caught = await catcher.wait_for(email, within=WAIT)
        assert "/signup/verify?token=" in caught.text
        await outbox_empty(registry)
    finally:
        await catcher.stop()


async def test_no_link_or_token_is_ever_logged(
    accounts_app: TestClient, mail: MailCatcher, caplog: pytest.LogCaptureFixture
) -> None:
    http = accounts_app
    caplog.set_level(logging.DEBUG)
    name, email = new_name(), address(new_name())
    await sign_up(http, name, email)
    caught = await mail.wait_for(email)
    await follow(http, caught, "/signup/verify")
    token = link(caught, "/signup/verify").split("token=", 1)[1]
    # Tessera's records, and its libraries' (not the test's SMTP server's, nor the test client's
    # access log, which Tessera's servers never turn on: see shared/serving.py)
    ours = [r for r in caplog.records if r.name not in ("mail.log", "aiohttp.access")]
    logged = "\n".join(record.getMessage() for record in ours)
    assert "mail signup to user" in logged  # the worker did log, without the secret
    assert token not in logged and email not in logged


def test_the_shipped_list_is_there() -> None:
    from auth_server.password_rules import common_passwords

    common = common_passwords()
    assert len(common) == 10_000 and {"password", "iloveyou", "qwerty"} <= common
