"""The login form's stateless CSRF token (:mod:`auth_server.login_csrf`): bound to the visitor's
login cookie and to the time it was issued, so a (cookie, token) pair stops working after MAX_AGE."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient

import auth_server.login_csrf
from auth_server import login_csrf
from auth_server.settings import Settings
from auth_server.stores.users import User
from tests.support.flow import hidden
from tests.support.servers import PASSWORD

LOGIN_COOKIE = "tessera_login"  # an http://localhost issuer: no __Host- prefix


class ShiftedClock:
    """Stands in for ``time`` in :mod:`auth_server.login_csrf`: the wall clock, moved by ``offset``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ShiftedClock:
    fake = ShiftedClock()
    monkeypatch.setattr(auth_server.login_csrf, "time", fake)
    return fake


async def login_form(http: TestClient) -> tuple[str, str]:
    """(the login cookie's nonce, the form's CSRF token) of a fresh login page."""
    page = await http.get("/login")
    assert page.status == 200
    nonce = next(c.value for c in http.session.cookie_jar if c.key == LOGIN_COOKIE)
    return nonce, hidden(await page.text(), "csrf_token")


async def post_login(http: TestClient, user: User, csrf: str) -> int:
    response = await http.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": csrf},
        allow_redirects=False,
    )
    return response.status


def session_cookie(http: TestClient) -> str | None:
    return next((c.value for c in http.session.cookie_jar if c.key == "tessera_session"), None)


async def test_a_fresh_token_signs_in(http: TestClient, user: User, clock: ShiftedClock) -> None:
    _, csrf = await login_form(http)
    assert await post_login(http, user, csrf) == 303
    assert session_cookie(http)


async def test_a_form_older_than_max_age_is_refused(
    http: TestClient, user: User, clock: ShiftedClock
) -> None:
    clock.offset = -(login_csrf.MAX_AGE + 60)  # the page was opened over an hour ago
    _, stale = await login_form(http)
    clock.offset = 0
    assert await post_login(http, user, stale) == 400
    assert session_cookie(http) is None
    # the page that refused it carries a fresh token, which works
    _, fresh = await login_form(http)
    assert await post_login(http, user, fresh) == 303


async def test_an_old_token_built_with_the_servers_key_is_refused(
    http: TestClient, user: User, settings: Settings
) -> None:
    nonce, _ = await login_form(http)
    key = login_csrf.signing_key(settings.key_encryption_key)
    now = int(time.time())
    old = login_csrf.form_token(key, nonce, now - login_csrf.MAX_AGE - 1)
    ahead = login_csrf.form_token(key, nonce, now + 3600)  # a token "from the future" never expires early
    for csrf in (old, ahead):
        assert await post_login(http, user, csrf) == 400
    assert session_cookie(http) is None
    # the same key and nonce, issued now: accepted (so the refusals above were about time alone)
    assert await post_login(http, user, login_csrf.form_token(key, nonce, now)) == 303


async def test_a_token_for_another_nonce_is_refused(http: TestClient, user: User, settings: Settings) -> None:
    await login_form(http)
    key = login_csrf.signing_key(settings.key_encryption_key)
    other = login_csrf.form_token(key, "another-visitors-nonce", int(time.time()))
    assert await post_login(http, user, other) == 400
    # nor does a genuine token of another visitor (another login cookie) work here
    http.session.cookie_jar.clear()
    _, theirs = await login_form(http)
    http.session.cookie_jar.clear()
    await login_form(http)
    assert await post_login(http, user, theirs) == 400
    assert session_cookie(http) is None


@pytest.mark.parametrize(
    "csrf", ["", ".", "1.", "x.abc", "1e3.abc", "\u0661.abc", "99999999999999999999.abc"]
)
async def test_malformed_tokens_are_refused(http: TestClient, user: User, csrf: str) -> None:
    await login_form(http)
    assert await post_login(http, user, csrf) == 400
