"""Fixtures of the end-to-end tests: a fresh headless browser, and a person to sign in as; and the
check that the programs a test runs (Chromium, nginx, wrk, Node.js) are here before it starts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from auth_server.crypto import hash_password
from auth_server.stores.users import User
from tests.e2e.browser import Browser, chromium
from tests.support.programs import needed_by, require
from tests.support.servers import PASSWORD, LiveServer


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A missing program fails the test here, in one line, before any fixture starts a server."""
    needed = needed_by(item)
    if needed:
        require(*needed)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as opened:
        yield opened


@pytest.fixture
async def person(live_server: LiveServer) -> User:
    return await live_server.registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
