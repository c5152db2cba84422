"""Grant types of the token endpoint, one module each, all with one signature.

``GRANTS`` maps ``grant_type`` to its handler; the token endpoint dispatches in exactly one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from auth_server.clients import Client
from auth_server.grants import authorization_code, client_credentials, password, refresh_token
from auth_server.grants.common import TokenRequest
from auth_server.registry import Registry

GrantHandler = Callable[[Registry, Client, TokenRequest], Awaitable[dict[str, Any]]]

GRANTS: Mapping[str, GrantHandler] = {
    "authorization_code": authorization_code.exchange,
    "refresh_token": refresh_token.exchange,
    "password": password.exchange,
    "client_credentials": client_credentials.exchange,
}
