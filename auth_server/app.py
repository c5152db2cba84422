"""The authorization server's application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from auth_server import crypto, keys, pages, paths, routes, theme
from auth_server.admin_api import app as admin_api
from auth_server.appkeys import REGISTRY
from auth_server.mail.outbox import send_forever
from auth_server.oidc.logout import deliver_forever
from auth_server.pages import error_page
from auth_server.registry import UNAVAILABLE_ERRORS, Registry
from auth_server.schema import MIGRATIONS, SCHEMA
from auth_server.settings import Settings
from shared import db, observability
from shared.error_middleware import error_middleware
from shared.http import BODY_TIMEOUT, TRUSTED_PROXIES
from shared.redis import create_redis


async def _has_active_key(registry: Registry) -> None:
    registry.keyring.active(datetime.now(UTC), registry.settings.signing_alg)  # LookupError without one


def create_app(settings: Settings) -> web.Application:
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs database and Redis URLs (see shared.embedded for development)")
    database_url, redis_url = settings.database_url, settings.redis_url

    app = web.Application(client_max_size=settings.max_body_bytes)
    app[TRUSTED_PROXIES] = settings.trusted_proxies
    app[BODY_TIMEOUT] = float(settings.body_timeout)
    crypto.HASHING.configure(settings.hashing_threads, settings.hashing_queue)
    # each resource server polls the revocation list every few seconds: its answers log at DEBUG
    metrics = observability.install(app, "auth", polled=(paths.REVOCATION_LIST,))
    # the operator's theme (TESSERA_THEME_DIR), read once; each page's language and theme are put
    # in force outside the error middleware, so that error pages have them too (issue 18)
    app[theme.THEME] = theme.load(settings.theme_dir)
    app.middlewares.append(pages.middleware)
    app.middlewares.append(
        error_middleware(
            html=error_page,
            observe=lambda e: metrics.count_error(e.error),
            unavailable=UNAVAILABLE_ERRORS,
        )
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        pending = await db.pending_migrations(database_url, SCHEMA, MIGRATIONS)
        if pending:
            raise db.NotMigrated(f"the database lacks migrations {', '.join(pending)}: run `tessera migrate`")
        # what is opened is closed in reverse order: at shutdown, or at once if start-up fails
        async with contextlib.AsyncExitStack() as opened:
            pool = await db.create_pool(database_url, SCHEMA)
            opened.push_async_callback(pool.close)
            redis = create_redis(redis_url)
            opened.push_async_callback(redis.aclose)
            registry = Registry.build(settings, pool, redis)
            opened.push_async_callback(registry.rate_limits.close)
            opened.push_async_callback(registry.client_keys.close)
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
                asyncio.create_task(deliver_forever(registry, stop)),  # back-channel logout
                asyncio.create_task(send_forever(registry, stop)),  # mail (with TESSERA_SMTP_URL)
            ]
            try:
                yield
            finally:
                stop.set()
                for task in background:
                    task.cancel()
                await asyncio.wait(background, timeout=5)

    app.cleanup_ctx.append(resources)
    if settings.admin_port:  # the admin API: its own port, never the public one (issue 15)
        admin_api.serve_beside(app, settings, reuse_port=settings.workers > 1)
    routes.add_routes(app)
    return app
