"""The sessions list of ``/account/security`` (issue 18): where the user is signed in, ending any
other session (and telling the apps that got ID tokens in it, as ``/logout`` does), and a password
change that ends every other session. The per-user index behind it drops sessions that ended or
expired."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from auth_server.crypto import hash_password
from auth_server.oidc.logout import end_all_sessions
from auth_server.registry import Registry
from auth_server.stores.sessions import SessionStore
from auth_server.stores.users import User
from shared.redis import Keys
from tests.integration.test_account_page import BackChannel, backchannel
from tests.support.flow import REDIRECT_URI, basic, hidden, query_of
from tests.support.servers import PASSWORD, ClientFactory
from tests.support.services import Services

__all__ = ["backchannel"]  # the fixture: a relying party's back-channel logout endpoint

WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/130.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/18.0 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
async def phone(http: TestClient) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser (her phone), against the same server."""
    async with aiohttp.ClientSession(
        base_url=str(http.make_url("")),
        headers={"User-Agent": IPHONE_SAFARI},
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies of 127.0.0.1, as the test client keeps
    ) as session:
        yield session


async def sign_in(
    browser: TestClient | aiohttp.ClientSession, username: str, password: str = PASSWORD
) -> int:
    page = await (await browser.get("/login", headers=_agent(browser))).text()
    response = await browser.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": hidden(page, "csrf_token")},
        headers=_agent(browser),
        allow_redirects=False,
    )
    return response.status


def _agent(browser: TestClient | aiohttp.ClientSession) -> dict[str, str]:
    return {"User-Agent": WINDOWS_CHROME} if isinstance(browser, TestClient) else {}


async def security(browser: TestClient | aiohttp.ClientSession) -> str:
    response = await browser.get("/account/security", allow_redirects=False)
    assert response.status == 200, response.status
    return await response.text()


async def signed_in(browser: TestClient | aiohttp.ClientSession) -> bool:
    return (await browser.get("/account", allow_redirects=False)).status == 200


async def test_the_list_names_each_browser_and_ends_the_others(
    http: TestClient,
    registry: Registry,
    user: User,
    phone: aiohttp.ClientSession,
    new_client: ClientFactory,
    backchannel: BackChannel,
) -> None:
    assert await sign_in(http, user.username) == 303
    assert await sign_in(phone, user.username) == 303
    # the phone signs in to an app with OpenID Connect: that app must hear when the phone's session ends
    client, secret = await new_client(scope="openid photos:read", backchannel_logout_uri=backchannel.url)
    assert secret
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s",
        "nonce": "n",
    }
    answer = await phone.get(f"/oauth2/authorize?{urlencode(params)}", allow_redirects=False)
    if answer.status == 200:
        page = await answer.text()
        answer = await phone.post(
            "/consent",
            data={
                "csrf_token": hidden(page, "csrf_token"),
                "request_id": hidden(page, "request_id"),
                "consent": "allow",
            },
            allow_redirects=False,
        )
    code = query_of(answer.headers["Location"])["code"]
    tokens = await http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers=basic(client.client_id, secret),
    )
    sid = jwt.decode((await tokens.json())["id_token"], options={"verify_signature": False})["sid"]

    page = await security(http)
    assert "Chrome on Windows" in page and "Safari on iPhone" in page
    assert page.count('data-session="') == 2
    assert "This browser" in page and "127.0.0.1" in page and "Last seen" in page
    listed = await registry.sessions.signed_in(user.subject)
    phones = [s for s in listed if s.session.user_agent == IPHONE_SAFARI]
    assert len(phones) == 1 and phones[0].session.sid == sid
    # this browser's own session cannot be ended from the list (it signs out instead)
    mine = next(s for s in listed if s.session.user_agent == WINDOWS_CHROME)
    assert f'value="{mine.handle}"' not in page
    assert f'name="session" value="{phones[0].handle}"' in page

    ended = await http.post(
        "/account/security/sessions/end",
        data={"csrf_token": hidden(page, "csrf_token"), "session": phones[0].handle},
        allow_redirects=False,
    )
    assert (ended.status, ended.headers["Location"]) == (303, "/account/security?done=session-ended")
    assert not await signed_in(phone)
    assert await signed_in(http)
    assert await registry.sessions.ended(sid)
    await asyncio.wait_for(backchannel.arrived.wait(), 10)
    logout = jwt.decode(backchannel.received[0]["logout_token"], options={"verify_signature": False})
    assert logout["sid"] == sid and logout["aud"] == client.client_id
    after = await (await http.get(ended.headers["Location"])).text()
    assert after.count('data-session="') == 1 and "That session has ended" in after


async def test_only_her_own_sessions_can_be_ended_and_the_form_needs_its_token(
    http: TestClient, registry: Registry, user: User, phone: aiohttp.ClientSession
) -> None:
    other = await registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
    assert await sign_in(phone, other.username) == 303
    theirs = (await registry.sessions.signed_in(other.subject))[0].handle
    assert await sign_in(http, user.username) == 303
    page = await security(http)
    refused = await http.post(
        "/account/security/sessions/end", data={"csrf_token": hidden(page, "csrf_token"), "session": theirs}
    )
    assert refused.status == 400
    assert await signed_in(phone)
    forged = await http.post(
        "/account/security/sessions/end", data={"csrf_token": "forged", "session": "others"}
    )
    assert forged.status == 400
    assert len(await registry.sessions.signed_in(user.subject)) == 1


async def test_signing_out_everywhere_else(
    http: TestClient, registry: Registry, user: User, phone: aiohttp.ClientSession
) -> None:
    assert await sign_in(http, user.username) == 303
    assert await sign_in(phone, user.username) == 303
    page = await security(http)
    response = await http.post(
        "/account/security/sessions/end",
        data={"csrf_token": hidden(page, "csrf_token"), "session": "others"},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/account/security?done=sessions-ended"
    assert not await signed_in(phone) and await signed_in(http)


async def test_changing_the_password_ends_the_other_sessions(
    http: TestClient, registry: Registry, user: User, phone: aiohttp.ClientSession
) -> None:
    assert await sign_in(http, user.username) == 303
    assert await sign_in(phone, user.username) == 303
    page = await security(http)
    csrf = hidden(page, "csrf_token")
    new = "a brand new passphrase"

    async def change(**fields: str) -> aiohttp.ClientResponse:
        data = {
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": new,
            "repeat": new,
            **fields,
        }
        return await http.post("/account/security/password", data=data, allow_redirects=False)

    wrong = await change(current_password="not my password")
    assert wrong.status == 400 and "current password is not right" in await wrong.text()
    mismatch = await change(repeat="something else entirely")
    assert mismatch.status == 400 and "not the same" in await mismatch.text()
    short = await change(new_password="short", repeat="short")
    assert short.status == 400 and "at least 8 characters" in await short.text()
    assert await signed_in(phone)  # nothing changed yet

    changed = await change()
    assert (changed.status, changed.headers["Location"]) == (303, "/account/security?done=password-changed")
    assert not await signed_in(phone)
    assert await signed_in(http)
    assert len(await registry.sessions.signed_in(user.subject)) == 1
    phone.cookie_jar.clear()
    assert await sign_in(phone, user.username, PASSWORD) == 400
    assert await sign_in(phone, user.username, new) == 303
    audited = await registry.audit.recent("password.changed", limit=100)
    assert any(e.subject == user.subject and e.details["sessions_ended"] == 1 for e in audited)


async def test_end_all_sessions_is_there_for_a_password_reset(
    http: TestClient, registry: Registry, user: User, phone: aiohttp.ClientSession
) -> None:
    """The API a password reset uses: every session of hers ends, with no browser to keep."""
    assert await sign_in(http, user.username) == 303
    assert await sign_in(phone, user.username) == 303
    assert await end_all_sessions(registry, user.subject, ip=None, via="password_reset") == 2
    assert not await signed_in(http) and not await signed_in(phone)
    assert await registry.sessions.signed_in(user.subject) == []


async def test_the_index_drops_sessions_that_ended_or_expired(
    backing: Services, redis_prefix: str, user: User
) -> None:
    redis = Redis.from_url(backing.redis_url)
    try:
        keys = Keys(f"{redis_prefix}index-{uuid.uuid4().hex[:6]}:")
        store = SessionStore(redis, keys, ttl=1)
        first = await store.log_in(None, user_id=user.subject, username=user.username, now=0, ip="192.0.2.1")
        second = await store.log_in(None, user_id=user.subject, username=user.username, now=0)
        assert len(await store.signed_in(user.subject)) == 2
        await store.delete(first)  # deleted without the index being told: dropped when read
        listed = await store.signed_in(user.subject)
        assert len(listed) == 1
        assert await redis.zcard(keys("user-sessions", user.subject)) == 1
        await asyncio.sleep(2.1)
        assert await store.signed_in(user.subject) == []
        assert not await redis.exists(keys("user-sessions", user.subject))  # the index expires with them
        assert await store.get(second) is None
    finally:
        await redis.aclose()
