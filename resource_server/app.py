"""The Photo Warehouse's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from resource_server import photos
from resource_server.settings import ResourceSettings
from resource_server.store import PhotoStore
from shared import db, observability, openapi
from shared.errors import error_middleware
from shared.http import BODY_TIMEOUT
from shared.jwt_validation import VALIDATOR, JWKSKeySource, KeySource, TokenValidator

SCHEMA = "tessera_photos"
MIGRATIONS = "resource_server.migrations"


def create_app(settings: ResourceSettings, *, keys: KeySource | None = None) -> web.Application:
    """``keys`` defaults to the issuer's JWKS, found through its metadata and refreshed in the background."""
    if settings.database_url is None:
        raise ValueError("create_app needs a database URL (see shared.embedded for development)")
    database_url = settings.database_url
    app = web.Application(client_max_size=settings.max_photo_bytes + 64 * 1024)
    app[BODY_TIMEOUT] = float(settings.body_timeout)
    metrics = observability.install(app, "resource")
    app.middlewares.append(error_middleware(observe=lambda e: metrics.oauth_errors.labels(e.error).inc()))
    source = keys or JWKSKeySource(
        settings.issuer,
        refresh_interval=settings.jwks_refresh_interval,
        min_refetch_interval=settings.jwks_min_refetch_interval,
    )
    app[VALIDATOR] = TokenValidator(
        issuer=settings.issuer,
        audience=settings.audience,
        keys=source,
        algorithms=settings.algorithms,
        leeway=settings.leeway,
        cache_size=settings.token_cache_size,
    )
    app[photos.MAX_BYTES] = settings.max_photo_bytes

    async def resources(app: web.Application) -> AsyncIterator[None]:
        pending = await db.pending_migrations(database_url, SCHEMA, MIGRATIONS)
        if pending:
            raise RuntimeError(f"the database lacks migrations {', '.join(pending)}: run `tessera migrate`")
        pool = await db.create_pool(database_url, SCHEMA)
        app[photos.STORE] = PhotoStore(pool)
        app[observability.HEALTH].checks["postgres"] = lambda: pool.fetchval("SELECT 1")
        app[observability.METRICS].watch_pool(pool)
        try:
            yield
        finally:
            await pool.close()

    app.cleanup_ctx.append(resources)
    if isinstance(source, JWKSKeySource):
        app.cleanup_ctx.append(source.cleanup_ctx)
        app[observability.HEALTH].checks["jwks"] = source.ready  # ready only when tokens can be checked
    app.router.add_get("/openapi.json", openapi.endpoint(openapi.resource_document()))
    app.router.add_get("/api/photos", photos.list_photos)
    app.router.add_post("/api/photos", photos.upload_photo)
    app.router.add_get("/api/photos/{photo_id}", photos.get_photo)
    app.router.add_delete("/api/photos/{photo_id}", photos.delete_photo)
    app.router.add_get("/api/photos/{photo_id}/content", photos.photo_content)
    app.router.add_get("/api/me", photos.me)
    app.router.add_get("/api/stats", photos.stats)
    return app
