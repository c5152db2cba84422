"""The Photo Warehouse's application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from resource_server import photos, routes
from resource_server.schema import MIGRATIONS, SCHEMA
from resource_server.settings import ResourceSettings
from resource_server.store import PhotoStore
from shared import db, observability
from shared.dpop import MemoryReplayStore, ProofVerifier, RedisReplayStore, ReplayStore
from shared.error_middleware import error_middleware
from shared.http import BODY_TIMEOUT
from shared.jwt_validation import VALIDATOR, JWKSKeySource, KeySource, RevocationList, TokenValidator

log = logging.getLogger("tessera.resource")
DPOP_JTI_PREFIX = "tessera-resource:dpop-jti:"  # the warehouse's keys in a Redis it may share


def create_app(settings: ResourceSettings, *, keys: KeySource | None = None) -> web.Application:
    """``keys`` defaults to the issuer's JWKS, found through its metadata and refreshed in the background."""
    if settings.database_url is None:
        raise ValueError("create_app needs a database URL (see shared.embedded for development)")
    database_url = settings.database_url
    app = web.Application(client_max_size=settings.max_photo_bytes + 64 * 1024)
    app[BODY_TIMEOUT] = float(settings.body_timeout)
    metrics = observability.install(app, "resource")
    replay, unavailable = _dpop_replay_store(app, settings)
    app.middlewares.append(
        error_middleware(
            observe=lambda e: metrics.count_error(e.error),
            unavailable=db.UNAVAILABLE_ERRORS + unavailable,
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
    identifier = settings.resource_identifier()
    app[VALIDATOR] = TokenValidator(
        issuer=settings.issuer,
        # tokens for the warehouse by its resource identifier (RFC 8707), or with the default
        # audience (clients that name no resource); a token for any other API is refused
        audience=settings.audience if identifier is None else (identifier, settings.audience),
        keys=source,
        algorithms=settings.algorithms,
        leeway=settings.leeway,
        cache_size=settings.token_cache_size,
        revocations=revocations,
        # DPoP (RFC 9449): each proof's jti once, across replicas when Redis is configured
        proofs=ProofVerifier(replay=replay, window=settings.dpop_proof_window),
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
    resource = None if identifier is None else routes.protected_resource(identifier, settings.issuer)
    routes.add_routes(app, resource)
    return app


def _dpop_replay_store(
    app: web.Application, settings: ResourceSettings
) -> tuple[ReplayStore, tuple[type[BaseException], ...]]:
    """Where DPoP proofs' ``jti`` are remembered, and the errors that mean it cannot be reached.

    Redis when one is configured (the deployments run several replicas, each with workers: a proof
    must be good once across all of them); otherwise this process's memory, which only holds for
    one replica of one worker. Only DPoP requests use it: bearer tokens never wait on Redis, and
    while it is down they keep working (DPoP requests get 503)."""
    if settings.redis_url is None:
        if settings.workers > 1:
            log.warning(
                "DPoP proofs are checked for replay in each worker's memory (no TESSERA_RESOURCE_REDIS_URL"
                " or TESSERA_REDIS_URL): with %d workers a proof could be replayed once per worker",
                settings.workers,
            )
        return MemoryReplayStore(), ()
    from shared import redis as shared_redis  # only when configured: the warehouse needs no Redis

    client: Any = shared_redis.create_redis(settings.redis_url)

    async def closed(app: web.Application) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app.cleanup_ctx.append(closed)
    return RedisReplayStore(client, DPOP_JTI_PREFIX), shared_redis.UNAVAILABLE_ERRORS


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
