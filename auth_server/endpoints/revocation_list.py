"""Tessera's revocation list: the access tokens revoked before they expire, for resource servers.

Not an RFC; a short-lived CRL for JWT access tokens. A resource server that validates tokens
locally (:mod:`shared.jwt_validation`) cannot see a revocation (RFC 7009, refresh-token reuse
detection, code replay) unless it asks, and it must not get a connection to this server's Redis.
So this server publishes, at ``GET /oauth2/revoked`` (advertised in the metadata as the
Tessera-specific ``tessera_revocation_list_uri``), every ``jti`` that is revoked while a resource
server may still accept its token::

    {"issuer": "https://auth.example.com",
     "generated_at": 1767225600,          # seconds since the epoch
     "next_update": 1767225601,           # a newer list may exist from then on
     "revoked": [{"jti": "…", "exp": 1767226000},            # one token
                 {"grant_id": "…", "exp": 1767226100}, …]}    # every token of a grant;
                                                              # soonest-expiring first

Only identifiers and expiries are published: a ``jti`` or ``grant_id`` is a random identifier, not
a credential. The list holds no more than what was revoked within one access-token lifetime plus
the largest clock leeway, one entry per revocation (see :mod:`auth_server.stores.revoked_tokens`).

Polling is cheap on both sides: the answer carries a weak ``ETag`` over the listed entries, and an
``If-None-Match`` naming it gets ``304 Not Modified`` with no body. Each process renders the list
at most once per :data:`RENDER_INTERVAL` (one Redis read, whatever the number of pollers), and
``Cache-Control`` lets a gateway keep it just as long.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from auth_server.appkeys import REGISTRY
from auth_server.registry import Registry

RENDER_INTERVAL = 1.0  # seconds a rendered list is served before Redis is read again
CACHE_CONTROL = "public, max-age=1"


@dataclass(frozen=True, slots=True)
class _Rendered:
    body: bytes
    etag: str
    at: float  # time.monotonic() of the Redis read


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against each listed tag, or ``*``."""
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def endpoint() -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler, with its own rendered copy (one per app: ``add_get(path, endpoint())``)."""
    rendered: _Rendered | None = None
    lock = asyncio.Lock()

    async def current(registry: Registry) -> _Rendered:
        nonlocal rendered
        if rendered is not None and time.monotonic() - rendered.at < RENDER_INTERVAL:
            return rendered
        async with lock:  # one Redis read however many pollers arrive at once
            if rendered is not None and time.monotonic() - rendered.at < RENDER_INTERVAL:
                return rendered
            at = time.monotonic()
            entries = await registry.revoked_tokens.listed()
            listed = orjson.dumps([{kind: ident, "exp": exp} for kind, ident, exp in entries])
            now = int(time.time())
            body = orjson.dumps(
                {
                    "issuer": registry.settings.issuer,
                    "generated_at": now,
                    "next_update": now + math.ceil(RENDER_INTERVAL),
                    "revoked": orjson.Fragment(listed),  # serialised once, for the body and the ETag
                }
            )
            etag = f'W/"{hashlib.sha256(listed).hexdigest()[:32]}"'
            rendered = _Rendered(body, etag, at)
            return rendered

    async def revocation_list(request: web.Request) -> web.Response:
        found = await current(request.app[REGISTRY])
        headers = {"ETag": found.etag, "Cache-Control": CACHE_CONTROL}
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and _matches(if_none_match, found.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=found.body, content_type="application/json", headers=headers)

    return revocation_list
