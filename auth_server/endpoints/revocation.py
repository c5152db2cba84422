"""Token revocation (RFC 7009).

A client may revoke only its own tokens. A refresh token takes its whole family with it (and the
access tokens issued alongside, §2.1); an access token's ``jti`` goes on the deny-list until the
token would have expired. Unknown, foreign or already-revoked tokens still get 200 (§2.2): the
answer says nothing about a token the caller does not own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.rate_limits import authenticated_client
from auth_server.registry import Registry
from shared.errors import NO_STORE, InvalidRequest
from shared.http import read_form


async def revoke(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    form = await read_form(request)
    settings = registry.settings
    client = await authenticated_client(
        request,
        registry,
        form,
        name="revoke",
        endpoint=settings.endpoint(paths.REVOKE),
        per_ip=settings.rate_revoke_per_ip,
        per_client=settings.rate_revoke_per_client,
    )
    token = form.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    # token_type_hint only decides which kind is tried first (§2.1).
    if form.get("token_type_hint") == "refresh_token":
        await _revoke_refresh(registry, client, token) or await _revoke_access(registry, client, token)
    else:
        await _revoke_access(registry, client, token) or await _revoke_refresh(registry, client, token)
    return web.Response(status=200, headers=NO_STORE)


async def _revoke_access(registry: Registry, client: Client, token: str) -> bool:
    claims = await registry.access_tokens.verify(token, audience=None)
    if claims is None:
        return False
    if claims["client_id"] == client.client_id:
        await registry.revoked_tokens.revoke(claims["jti"], datetime.fromtimestamp(claims["exp"], UTC))
    return True


async def _revoke_refresh(registry: Registry, client: Client, token: str) -> bool:
    info = await registry.refresh_tokens.describe(token)
    if info is None:
        return False
    if info.grant.client_id == client.client_id:
        live = await registry.refresh_tokens.revoke_family(info.grant.family_id, "revoked by the client")
        await registry.revoked_tokens.revoke_grant(info.grant.family_id, live)
    return True
