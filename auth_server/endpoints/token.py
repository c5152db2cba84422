"""Token endpoint (RFC 6749 §3.2, §5), read as its steps.

authenticate client → rate limits → grant type supported? → client allowed it? → run the grant →
no-store JSON.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.client_auth import authenticate_client
from auth_server.grants import GRANTS
from auth_server.grants.common import TokenRequest
from auth_server.rate_limits import limit
from auth_server.stores.rate_limits import Limit
from shared.errors import (
    NO_STORE,
    InvalidRequest,
    OAuthError,
    TooManyRequests,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from shared.http import client_ip, read_form
from shared.observability import METRICS


async def token(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    form = await read_form(request)
    ip = client_ip(request)
    per_ip = Limit("token-ip", ip, registry.settings.rate_token_per_ip)
    wait = registry.rate_limits.known_exceeded(per_ip)  # shed an over-limit IP before any work
    if wait is not None:
        raise TooManyRequests("Too many requests; retry later.", retry_after=wait)
    try:
        client = await authenticate_client(
            registry, request.headers, form, registry.settings.endpoint(paths.TOKEN)
        )
    except OAuthError:
        await limit(registry, per_ip)  # failures count against the IP, and a 429 wins over them
        raise
    # both budgets counted together (in the next batch, or in one round trip when exact)
    await limit(
        registry, per_ip, Limit("token-client", client.client_id, registry.settings.rate_token_per_client)
    )
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("The grant_type parameter is required.")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported.")
    if not client.allows_grant(grant_type):
        raise UnauthorizedClient(f"This client is not registered for the {grant_type} grant.")
    body = await grant(registry, client, TokenRequest(form, ip))
    request.app[METRICS].tokens.labels(grant_type).inc()
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=NO_STORE)
