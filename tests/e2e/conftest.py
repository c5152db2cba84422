"""Fixtures of the end-to-end tests: a fresh headless browser, and a person to sign in as."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from auth_server.crypto import hash_password
from auth_server.stores.users import User
from tests.e2e.browser import Browser, chromium
from tests.support.servers import PASSWORD, LiveServer


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as opened:
        yield opened


@pytest.fixture
async def person(live_server: LiveServer) -> User:
    return await live_server.registry.users.create(f"user-{uuid.uuid4().hex[:10]}", hash_password(PASSWORD))
