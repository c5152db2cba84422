"""Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

The requested scope may only narrow what the family was granted (and what the client may still
have); the new refresh token keeps the family's full scope, as RFC 6749 §6 requires. A refresh may
name one of the resources the grant covers (RFC 8707 §2.2), never another.
"""

from __future__ import annotations

from typing import Any

from auth_server import dpop, profiles, resources, scopes
from auth_server.clients import Client
from auth_server.grants.base import Grant
from auth_server.grants.common import TokenRequest
from auth_server.refresh_rotation import Rejection
from auth_server.registry import Registry
from auth_server.stores.refresh_tokens import Refused
from auth_server.tokens import token_response
from shared.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget


async def exchange(registry: Registry, client: Client, request: TokenRequest) -> dict[str, Any]:
    token = request.get("refresh_token")
    if token is None:
        raise InvalidRequest("The refresh_token parameter is required.")
    requested = scopes.parse(request.get("scope"))
    resource = request.get("resource")
    if resource is not None:
        resources.identifiers([resource])  # a malformed one is refused before anything else

    async def narrow(audience: str, scope: tuple[str, ...]) -> tuple[str, ...]:
        # checked on the locked row, before it changes: a mistake costs the client nothing
        (target,) = await resources.resolve(registry, client, [audience])
        return target.scope(scope)

    access = registry.access_tokens.prepare()
    outcome = await registry.refresh_tokens.rotate(
        token,
        client_id=client.client_id,
        access=access.record,
        requested_scope=requested,
        client_scope=client.scope,
        audience=lambda granted: resources.chosen(granted, resource, registry.settings.access_token_audience),
        narrow=narrow,
        dpop_jkt=request.dpop_jkt,  # a public client's family is bound to its DPoP key (RFC 9449 §5)
        rotate=profiles.rotates_refresh_tokens(client),  # FAPI 2.0 clients' tokens stay (§5.3.2.1 item 9)
    )
    if isinstance(outcome, Refused):
        if outcome.family_id is not None:
            await registry.revoked_tokens.revoke_grant(outcome.family_id, outcome.revoked_access)
        if outcome.reason is Rejection.REUSED:
            await registry.audit.record(
                "refresh_token.reuse_detected", client_id=client.client_id, ip=request.client_ip
            )
        if outcome.reason is Rejection.SCOPE_EXCEEDED:
            raise InvalidScope(outcome.reason.description)
        if outcome.reason is Rejection.TARGET:
            raise InvalidTarget(outcome.reason.description)
        # Rejection.DPOP_KEY is an invalid_grant too: the grant is bound to a key the request lacks
        raise InvalidGrant(outcome.reason.description)
    await registry.revoked_tokens.revoke_all(outcome.retired_access)
    grant, scope = outcome.grant, outcome.scope
    jwt = registry.access_tokens.sign(
        access,
        subject=grant.subject,
        client_id=client.client_id,
        scope=scope,
        auth_time=None if grant.auth_time is None else int(grant.auth_time.timestamp()),
        grant_id=str(grant.family_id),
        audience=outcome.audience,
        jkt=request.dpop_jkt,
    )
    kind = dpop.token_type(request.dpop_jkt)
    return token_response(jwt, registry.access_tokens.ttl, scope, outcome.refresh_token, token_type=kind)


# It rotates the refresh token it is given, within that token's family, but starts no family: a
# client needs another grant that does (registration.py refuses refresh_token alone).
GRANT = Grant("refresh_token", token_endpoint=exchange, parameters=("refresh_token", "scope", "resource"))
