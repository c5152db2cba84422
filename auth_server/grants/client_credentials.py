"""Client credentials grant (RFC 6749 §4.4): a confidential client acting on its own behalf.

The token's ``sub`` is the client itself; no refresh token is issued (§4.4.3). This is the B2B hot
path: the client record comes from the in-process cache, so a warm request touches no database.
"""

from __future__ import annotations

from typing import Any

from auth_server import scopes
from auth_server.clients import Client
from auth_server.grants.common import TokenRequest, issue_tokens
from auth_server.registry import Registry
from shared.errors import UnauthorizedClient


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    if client.is_public:
        raise UnauthorizedClient("Public clients cannot use the client_credentials grant.")
    scope = scopes.resolve(scopes.parse(request.get("scope")), client.scope, set(registry.settings.scopes))
    issued = await issue_tokens(
        registry, client, subject=client.client_id, scope=scope, auth_time=None, refresh=False
    )
    return issued.body
