"""Grant types of the token endpoint, one module each, all with one signature.

``GRANTS`` maps ``grant_type`` to its handler; the token endpoint dispatches in exactly one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from auth_server.clients import Client
from auth_server.grants import authorization_code, refresh_token
from auth_server.registry import Registry

GrantHandler = Callable[[Registry, Client, Mapping[str, str]], Awaitable[dict[str, Any]]]

GRANTS: Mapping[str, GrantHandler] = {
    "authorization_code": authorization_code.exchange,
    "refresh_token": refresh_token.exchange,
}
