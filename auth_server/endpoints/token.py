"""Token endpoint (RFC 6749 §3.2, §5), read as its steps.

authenticate the client within the rate limits → approved by the platform? → grant type supported?
→ client allowed it (and
confidential, if the grant is declared for confidential clients only)? → its DPoP proof, if it sent
one (or must: RFC 9449 §5, ``auth_server/dpop.py``) → run the grant → no-store JSON.
The grants and their handlers are declared in ``grants/`` (``GRANTS``).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from auth_server import paths
from auth_server.appkeys import REGISTRY
from auth_server.grants import GRANTS
from auth_server.grants.common import TokenRequest
from auth_server.rate_limits import authenticated_client
from shared.errors import (
    NO_STORE,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from shared.http import client_ip, read_form
from shared.observability import METRICS


async def token(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    settings = registry.settings
    form = await read_form(request)
    client = await authenticated_client(
        request,
        registry,
        form,
        name="token",
        endpoint=settings.endpoint(paths.TOKEN),
        per_ip=settings.rate_token_per_ip,
        per_client=settings.rate_token_per_client,
    )
    if not client.active:  # pending review, rejected or suspended: no tokens, no refreshes
        raise UnauthorizedClient(f"This client cannot get tokens: it is {client.status}.")
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("The grant_type parameter is required.")
    grant = GRANTS.get(grant_type)
    if grant is None or grant.token_endpoint is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported.")
    if not client.allows_grant(grant_type):
        raise UnauthorizedClient(f"This client is not registered for the {grant_type} grant.")
    if grant.confidential_only and client.is_public:
        raise UnauthorizedClient(f"Public clients cannot use the {grant_type} grant.")
    proof = await registry.dpop.token_request(request, client)  # None without a DPoP header
    body = await grant.token_endpoint(registry, client, TokenRequest(form, client_ip(request), proof))
    request.app[METRICS].count_token(grant_type)
    registry.token_counts.count(client.client_id)  # in process: no round trip per token
    headers = NO_STORE if proof is None else {**NO_STORE, **await registry.dpop.response_headers(proof)}
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)
