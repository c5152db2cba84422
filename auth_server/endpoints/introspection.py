"""Token introspection (RFC 7662), for clients registered with ``allow_introspection``.

Anything that is not a live token of this server — expired, revoked, rotated, malformed, foreign —
is ``{"active": false}`` and nothing else (§2.2). ``token_type_hint`` only orders the lookups.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.clients import Client
from auth_server.rate_limits import authenticated_client
from auth_server.registry import Registry
from shared.errors import NO_STORE, InvalidRequest, UnauthorizedClient
from shared.http import read_form

INACTIVE: dict[str, Any] = {"active": False}


async def introspect(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    form = await read_form(request)
    settings = registry.settings
    client = await authenticated_client(
        request,
        registry,
        form,
        name="introspect",
        endpoint=settings.endpoint(paths.INTROSPECT),
        per_ip=settings.rate_introspect_per_ip,
        per_client=settings.rate_introspect_per_client,
    )
    if not client.allow_introspection or not client.active:
        raise UnauthorizedClient("This client is not allowed to introspect tokens.")
    token = form.get("token")
    if token is None:
        raise InvalidRequest("The token parameter is required.")
    if form.get("token_type_hint") == "refresh_token":
        answer = await _refresh(registry, token) or await _access(registry, token)
    else:
        answer = await _access(registry, token) or await _refresh(registry, token)
    if answer is not None and not await _client_active(registry, answer):
        answer = None  # the platform suspended (or never approved) the client it was issued to
    if answer is not None and answer.get("client_id") == client.client_id:
        answer = await _as_its_client_sees_it(registry, client, answer)
    return web.Response(
        body=orjson.dumps(answer or INACTIVE), content_type="application/json", headers=NO_STORE
    )


async def _client_active(registry: Registry, answer: dict[str, Any]) -> bool:
    issued_to = await registry.clients.get(str(answer.get("client_id", "")))
    return issued_to is not None and issued_to.active


async def _as_its_client_sees_it(
    registry: Registry, client: Client, answer: dict[str, Any]
) -> dict[str, Any]:
    """A pairwise client asking about its own token learns what its ID tokens say: the pairwise
    ``sub``, never the user's own id or username (OpenID Connect Core §8)."""
    if client.subject_type != "pairwise" or "username" not in answer:
        return answer
    pairwise = await registry.subjects.for_client(client, answer["sub"])
    return {**{k: v for k, v in answer.items() if k != "username"}, "sub": pairwise}


async def _access(registry: Registry, token: str) -> dict[str, Any] | None:
    claims = await registry.access_tokens.verify(token, audience=None)
    if claims is None or await registry.revoked_tokens.is_revoked(claims["jti"], claims.get("grant_id")):
        return None
    # act: who acts for the subject, for a token from token exchange (RFC 8693 §4.1); cnf: the DPoP
    # key the token is bound to, whose token_type is then DPoP (RFC 9449 §6.2)
    fields = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "act", "cnf")
    bound = isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]
    answer: dict[str, Any] = {"active": True, "token_type": "DPoP" if bound else "Bearer"}
    answer.update((k, claims[k]) for k in fields if k in claims)
    return await _with_username(registry, answer)


async def _refresh(registry: Registry, token: str) -> dict[str, Any] | None:
    info = await registry.refresh_tokens.describe(token)
    if info is None or not info.active:
        return None
    answer: dict[str, Any] = {
        "active": True,
        "token_type": "refresh_token",
        "scope": " ".join(info.grant.scope),
        "client_id": info.grant.client_id,
        "sub": info.grant.subject,
        "exp": int(info.expires_at.timestamp()),
        "iat": int(info.issued_at.timestamp()),
        "iss": registry.settings.issuer,
    }
    return await _with_username(registry, answer)


async def _with_username(registry: Registry, answer: dict[str, Any]) -> dict[str, Any]:
    try:
        user_id = uuid.UUID(answer["sub"])
    except ValueError:
        return answer  # a client's own token (client_credentials): no user
    user = await registry.users.get(user_id)
    if user is not None:
        answer["username"] = user.username
    return answer
