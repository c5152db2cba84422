"""Applying the Redis rate limits at the endpoints: 429 with ``Retry-After`` when one is exceeded.

Per-address budgets are spent by :func:`shared.http.address_bucket` (an IPv6 client's whole /64).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from auth_server.client_auth import authenticate_client
from auth_server.clients import Client
from auth_server.registry import Registry
from auth_server.stores.rate_limits import Limit
from shared.errors import OAuthError, TooManyRequests
from shared.http import address_bucket, client_ip


def per_address(name: str, request: web.Request, per_minute: int) -> Limit:
    return Limit(f"{name}-ip", address_bucket(client_ip(request)), per_minute)


async def limit(registry: Registry, *limits: Limit) -> None:
    wait = await registry.rate_limits.exceeded(*limits)
    if wait is not None:
        raise TooManyRequests("Too many requests; retry later.", retry_after=wait)


async def authenticated_client(
    request: web.Request,
    registry: Registry,
    form: Mapping[str, str],
    *,
    name: str,
    endpoint: str,
    per_ip: int,
    per_client: int,
) -> Client:
    """Client authentication at a back-channel endpoint (token, revocation, introspection), inside
    that endpoint's budgets: an address known to be over its budget is refused before any work,
    failures count against the address (and a 429 wins over them), and a request that authenticates
    spends both the address's and the client's budget (a public client's, per address)."""
    by_ip = per_address(name, request, per_ip)
    wait = registry.rate_limits.known_exceeded(by_ip)  # shed an over-limit address before any work
    if wait is not None:
        raise TooManyRequests("Too many requests; retry later.", retry_after=wait)
    try:
        client = await authenticate_client(registry, request.headers, form, endpoint)
    except OAuthError:
        await limit(registry, by_ip)
        raise
    # A public client proves nothing but its id, which anyone may send: its budget is kept per
    # address, or one stranger could spend the share of every user of the app.
    whose = f"{client.client_id}@{by_ip.key}" if client.is_public else client.client_id
    # both budgets counted together (in the next batch, or in one round trip when exact)
    await limit(registry, by_ip, Limit(f"{name}-client", whose, per_client))
    return client
