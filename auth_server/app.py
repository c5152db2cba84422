"""The authorization server's application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from auth_server import crypto, keys, paths
from auth_server.appkeys import REGISTRY
from auth_server.endpoints.authorize import authorize
from auth_server.endpoints.consent import consent
from auth_server.endpoints.introspection import introspect
from auth_server.endpoints.jwks import jwks
from auth_server.endpoints.login import login, login_page, logout
from auth_server.endpoints.metadata import metadata
from auth_server.endpoints.revocation import revoke
from auth_server.endpoints.revocation_list import endpoint as revocation_list
from auth_server.endpoints.token import token
from auth_server.pages import error_page
from auth_server.registry import Registry
from auth_server.settings import Settings
from shared import db, observability, openapi
from shared.errors import error_middleware
from shared.http import BODY_TIMEOUT, TRUSTED_PROXIES
from shared.redis import create_redis

SCHEMA = "tessera_auth"
MIGRATIONS = "auth_server.migrations"


async def _has_active_key(registry: Registry) -> None:
    registry.keyring.active(datetime.now(UTC))  # raises LookupError without one


def create_app(settings: Settings) -> web.Application:
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs database and Redis URLs (see shared.embedded for development)")
    database_url, redis_url = settings.database_url, settings.redis_url

    app = web.Application(client_max_size=settings.max_body_bytes)
    app[TRUSTED_PROXIES] = settings.trusted_proxies
    app[BODY_TIMEOUT] = float(settings.body_timeout)
    crypto.HASHING.configure(settings.hashing_threads, settings.hashing_queue)
    metrics = observability.install(app, "auth")
    app.middlewares.append(
        error_middleware(html=error_page, observe=lambda e: metrics.oauth_errors.labels(e.error).inc())
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        pending = await db.pending_migrations(database_url, SCHEMA, MIGRATIONS)
        if pending:
            raise RuntimeError(f"the database lacks migrations {', '.join(pending)}: run `tessera migrate`")
        pool = await db.create_pool(database_url, SCHEMA)
        redis = create_redis(redis_url)
        registry = Registry.build(settings, pool, redis)
        await keys.ensure_key(registry)
        await keys.reload(registry)
        app[REGISTRY] = registry
        app[observability.METRICS].watch_pool(pool)
        health = app[observability.HEALTH]
        health.checks["postgres"] = lambda: pool.fetchval("SELECT 1")
        health.checks["redis"] = redis.ping
        health.checks["signing_key"] = lambda: _has_active_key(registry)
        stop = asyncio.Event()
        background = [
            asyncio.create_task(keys.refresh_forever(registry, settings.key_refresh_interval)),
            asyncio.create_task(registry.clients.follow_changes(stop)),
        ]
        try:
            yield
        finally:
            stop.set()
            for task in background:
                task.cancel()
            await asyncio.wait(background, timeout=5)
            await registry.client_keys.close()
            await registry.rate_limits.close()
            await redis.aclose()
            await pool.close()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/openapi.json", openapi.endpoint(openapi.auth_document()))
    app.router.add_get(paths.METADATA, metadata)
    app.router.add_get(paths.JWKS, jwks)
    app.router.add_get(paths.AUTHORIZE, authorize)
    app.router.add_post(paths.TOKEN, token)
    app.router.add_post(paths.REVOKE, revoke)
    app.router.add_post(paths.INTROSPECT, introspect)
    app.router.add_get(paths.REVOCATION_LIST, revocation_list())
    app.router.add_get(paths.LOGIN, login_page)
    app.router.add_post(paths.LOGIN, login)
    app.router.add_post(paths.LOGOUT, logout)
    app.router.add_post(paths.CONSENT, consent)
    return app
