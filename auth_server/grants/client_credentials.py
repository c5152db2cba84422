"""Client credentials grant (RFC 6749 §4.4): a confidential client acting on its own behalf.

The token's ``sub`` is the client itself; no refresh token is issued (§4.4.3). This is the B2B hot
path: the client record comes from the in-process cache, so a warm request touches no database.
Declared confidential-only: no public client can be registered for it, and the token endpoint
refuses it to one before this handler runs.
"""

from __future__ import annotations

from typing import Any

from auth_server import resources, scopes
from auth_server.clients import Client
from auth_server.grants.base import Grant
from auth_server.grants.common import TokenRequest, issue_tokens
from auth_server.registry import Registry


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    scope = scopes.resolve(scopes.parse(request.get("scope")), client.scope, set(registry.settings.scopes))
    target = await resources.target(registry, client, request.get("resource"), None)
    issued = await issue_tokens(
        registry,
        client,
        subject=client.client_id,
        scope=scope,
        auth_time=None,
        refresh=GRANT.issues_refresh_tokens,
        target=target,
        proof=request.dpop,
    )
    return issued.body


GRANT = Grant(
    "client_credentials",
    token_endpoint=exchange,
    parameters=("scope", "resource"),
    issues_refresh_tokens=False,  # RFC 6749 §4.4.3
    confidential_only=True,
)
