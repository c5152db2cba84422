"""Sign-up and password reset as a person does them (issue 18): the forms filled in through the
test client, and the links followed out of the mail a real SMTP server caught
(:class:`auth_server.mail.catcher.MailCatcher`)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from auth_server.mail.catcher import Caught, MailCatcher
from tests.support.flow import hidden

STRONG_PASSWORD = "plum tractor violet seventeen"


@pytest.fixture
async def mail() -> AsyncIterator[MailCatcher]:
    """A real SMTP server on a free loopback port, catching what it is sent."""
    catcher = MailCatcher()
    await catcher.start()
    try:
        yield catcher
    finally:
        await catcher.stop()


def new_name(prefix: str = "mei") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def address(name: str) -> str:
    return f"{name}@photos.example"


async def csrf_of(http: TestClient, path: str) -> str:
    page = await http.get(path)
    assert page.status == 200, await page.text()
    return hidden(await page.text(), "csrf_token")


async def sign_up(
    http: TestClient,
    username: str,
    email: str,
    password: str = STRONG_PASSWORD,
    *,
    nickname: str = "",
    again: str | None = None,
    **extra: str,
) -> ClientResponse:
    """Fill in /signup and send it (not following the redirect)."""
    csrf = await csrf_of(http, "/signup")
    return await http.post(
        "/signup",
        data={
            "csrf_token": csrf,
            "username": username,
            "email": email,
            "nickname": nickname,
            "password": password,
            "password_again": password if again is None else again,
            **extra,
        },
        allow_redirects=False,
    )


async def ask(http: TestClient, path: str, typed: str) -> ClientResponse:
    """Fill in a form that asks for mail (/password-reset, /signup/resend) and send it."""
    csrf = await csrf_of(http, path)
    return await http.post(path, data={"csrf_token": csrf, "identifier": typed}, allow_redirects=False)


def link(caught: Caught, path: str) -> str:
    """The path and query of the link to ``path`` in a mail (the test client's base is the server)."""
    for url in caught.links:
        parts = urlsplit(url)
        if parts.path == path:
            return f"{parts.path}?{parts.query}"
    raise AssertionError(f"no link to {path} in {caught.text!r}")


async def follow(http: TestClient, caught: Caught, path: str, **fields: Any) -> ClientResponse:
    """Open the link to ``path`` in the mail, then send the form it shows (with ``fields``)."""
    page = await http.get(link(caught, path))
    assert page.status == 200, await page.text()
    html = await page.text()
    return await http.post(
        path,
        data={"csrf_token": hidden(html, "csrf_token"), "token": hidden(html, "token"), **fields},
        allow_redirects=False,
    )


def message_of(html: str) -> str:
    """The texts of a page's messages (page-level and per field), spaces squeezed."""
    found = re.findall(r'class="(?:error|field-error)"[^>]*>(.*?)</(?:p|div)>', html, re.S)
    return " ".join(" ".join(re.sub(r"<[^>]+>", "", f).split()) for f in found)


async def until(check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "it") -> None:
    """Until ``check()`` is true; an assertion error naming ``what`` after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.05)
