"""The JWK Set (RFC 7517 §5) of every key that signs, will sign, or signed a still-live token."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from auth_server.appkeys import REGISTRY


async def jwks(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    max_age = registry.settings.jwks_max_age
    return web.json_response(
        registry.keyring.jwks(datetime.now(UTC)),
        content_type="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={max_age}, stale-while-revalidate={max_age}"},
    )
