"""The Photo Warehouse's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge

from resource_server import photos, routes
from resource_server.schema import MIGRATIONS, SCHEMA
from resource_server.settings import ResourceSettings
from resource_server.store import PhotoStore
from shared import db, observability
from shared.error_middleware import error_middleware
from shared.http import BODY_TIMEOUT
from shared.jwt_validation import VALIDATOR, JWKSKeySource, KeySource, RevocationList, TokenValidator


def create_app(settings: ResourceSettings, *, keys: KeySource | None = None) -> web.Application:
    """``keys`` defaults to the issuer's JWKS, found through its metadata and refreshed in the background."""
    if settings.database_url is None:
        raise ValueError("create_app needs a database URL (see shared.embedded for development)")
    database_url = settings.database_url
    app = web.Application(client_max_size=settings.max_photo_bytes + 64 * 1024)
    app[BODY_TIMEOUT] = float(settings.body_timeout)
    metrics = observability.install(app, "resource")
    app.middlewares.append(
        error_middleware(
            observe=lambda e: metrics.oauth_errors.labels(e.error).inc(), unavailable=db.UNAVAILABLE_ERRORS
        )
    )
    source = keys or JWKSKeySource(
        settings.issuer,
        refresh_interval=settings.jwks_refresh_interval,
        min_refetch_interval=settings.jwks_min_refetch_interval,
    )
    revocations = (
        RevocationList(settings.issuer, refresh_interval=settings.revocation_refresh_interval)
        if settings.revocation_check
        else None
    )
    app[VALIDATOR] = TokenValidator(
        issuer=settings.issuer,
        audience=settings.audience,
        keys=source,
        algorithms=settings.algorithms,
        leeway=settings.leeway,
        cache_size=settings.token_cache_size,
        revocations=revocations,
    )
    app[photos.MAX_BYTES] = settings.max_photo_bytes

    async def resources(app: web.Application) -> AsyncIterator[None]:
        pending = await db.pending_migrations(database_url, SCHEMA, MIGRATIONS)
        if pending:
            raise db.NotMigrated(f"the database lacks migrations {', '.join(pending)}: run `tessera migrate`")
        pool = await db.create_pool(database_url, SCHEMA)
        try:  # closed also if the rest of start-up fails
            app[photos.STORE] = PhotoStore(pool)
            app[observability.HEALTH].checks["postgres"] = lambda: pool.fetchval("SELECT 1")
            app[observability.METRICS].watch_pool(pool)
            yield
        finally:
            await pool.close()

    app.cleanup_ctx.append(resources)
    if isinstance(source, JWKSKeySource):
        app.cleanup_ctx.append(source.cleanup_ctx)
        app[observability.HEALTH].checks["jwks"] = source.ready  # ready only when tokens can be checked
    if revocations is not None:
        # never a readiness check: while the issuer is down its keys still validate tokens, and the
        # last list fetched keeps applying (fail open); alert on the age instead
        app.cleanup_ctx.append(revocations.cleanup_ctx)
        _watch_revocations(metrics, revocations)
    identifier = settings.resource_identifier()
    resource = None if identifier is None else routes.protected_resource(identifier, settings.issuer)
    routes.add_routes(app, resource)
    return app


def _watch_revocations(metrics: observability.Metrics, revocations: RevocationList) -> None:
    """Report the revocation list's staleness and size at every scrape."""

    def age() -> float:
        seconds = revocations.age
        return float("inf") if seconds is None else seconds

    Gauge(
        "tessera_revocation_list_age_seconds",
        "Seconds since the issuer last confirmed the revocation list (+Inf: never fetched)",
        registry=metrics.registry,
    ).set_function(age)
    Gauge(
        "tessera_revocation_list_entries",
        "Revoked access tokens (jti) held from the issuer's revocation list",
        registry=metrics.registry,
    ).set_function(lambda: revocations.size)
