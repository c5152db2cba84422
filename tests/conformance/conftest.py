"""Fixtures of the conformance tests (helpers are in :mod:`tests.conformance.support`)."""

from __future__ import annotations

import pytest

from auth_server.registry import Registry
from auth_server.stores.users import User
from tests.conformance.support import profiled


@pytest.fixture
async def member(registry: Registry, user: User) -> User:
    """A user with a full profile (``support.PROFILE``): name, nickname, picture, email..."""
    return await profiled(registry, user)
