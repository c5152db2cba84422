"""Request ids, structured logs and Prometheus metrics, shared by both servers.

* Every request gets an id: ``X-Request-ID`` when the caller (the gateway) sent a sane one, else a
  new one. It is returned in the response and stamped on every log record of that request.
* Logs are JSON lines (python-json-logger). One access line per request carries the method, the
  route's path *template* (never the query string, where codes and states travel), the status and
  the duration; no handler logs secrets, codes or tokens.
* ``/metrics`` (prometheus-client, one registry per app) counts requests by route and status,
  times them, and exposes what each server adds (tokens by grant, OAuth errors by code, pools).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pythonjsonlogger.orjson import OrjsonFormatter

from shared.ids import random_id

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("tessera.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on records that lack one (the record factory sets it at creation)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def stamp_request_ids() -> None:
    """Every log record remembers the request it was made in, whichever handler formats it later.

    Replaces the process's log-record factory (once; again is a no-op): called by :func:`install`,
    at app start-up, never on import, so importing this module changes no global state.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_tessera", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    factory._tessera = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def json_formatter() -> logging.Formatter:
    return OrjsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


class Metrics:
    """The Prometheus collectors of one app."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tessera_http_requests",
            "HTTP requests by route and status",
            ["service", "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tessera_http_request_seconds",
            "Request latency by route",
            ["service", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.tokens = Counter(
            "tessera_tokens_issued",
            "Access tokens issued by grant type",
            ["grant_type"],
            registry=self.registry,
        )
        self.oauth_errors = Counter(
            "tessera_oauth_errors", "OAuth errors returned, by error code", ["error"], registry=self.registry
        )
        self.pool_in_use = Gauge(
            "tessera_db_pool_connections_in_use",
            "Postgres pool connections in use",
            ["service"],
            registry=self.registry,
        )
        self.pool_size = Gauge(
            "tessera_db_pool_connections",
            "Postgres pool connections open",
            ["service"],
            registry=self.registry,
        )
        self.service = service

    def watch_pool(self, pool: Any) -> None:
        """Report an asyncpg pool's saturation at every scrape."""
        self.pool_size.labels(self.service).set_function(pool.get_size)
        self.pool_in_use.labels(self.service).set_function(lambda: pool.get_size() - pool.get_idle_size())


METRICS = web.AppKey("metrics", Metrics)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def observability_middleware(metrics: Metrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Outermost middleware: request id, access log line, request metrics.

    The metric children are looked up once per label set and kept: ``labels()`` costs a lock and
    a tuple hash on every request otherwise, and this runs on every request of the hot path.
    """
    counters: dict[tuple[str, str, int], Any] = {}
    histograms: dict[str, Any] = {}

    def record(route: str, method: str, status: int, elapsed: float) -> None:
        counter = counters.get((route, method, status))
        if counter is None:
            counter = counters[(route, method, status)] = metrics.requests.labels(
                metrics.service, route, method, str(status)
            )
        histogram = histograms.get(route)
        if histogram is None:
            histogram = histograms[route] = metrics.latency.labels(metrics.service, route)
        counter.inc()
        histogram.observe(elapsed)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _SANE_ID.match(incoming) else random_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-ID"] = rid
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = rid
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = _route(request)
            record(route, request.method, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id.reset(token)

    return middleware


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class Health:
    """Readiness: named checks of the backing services, and whether the process is draining."""

    def __init__(self) -> None:
        self.draining = False
        self.checks: dict[str, Callable[[], Awaitable[object]]] = {}

    async def on_shutdown(self, app: web.Application) -> None:
        self.draining = True


HEALTH = web.AppKey("health", Health)


async def readyz(request: web.Request) -> web.Response:
    """200 when every backing service answers; 503 while draining or when one does not."""
    health = request.app[HEALTH]
    if health.draining:
        return web.json_response({"status": "draining"}, status=503, headers={"Cache-Control": "no-store"})
    results: dict[str, str] = {}
    for name, check in health.checks.items():
        try:
            async with asyncio.timeout(2):
                await check()
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"failing: {type(exc).__name__}"
    ok = all(v == "ok" for v in results.values())
    return web.json_response(
        {"status": "ready" if ok else "unavailable", "checks": results},
        status=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )


def install(app: web.Application, service: str) -> Metrics:
    """Add request ids, access logs, metrics, /healthz, /readyz and /metrics to an app.

    Also stamps request ids on every log record of the process (:func:`stamp_request_ids`).
    """
    stamp_request_ids()
    metrics = Metrics(service)
    health = Health()
    app[METRICS] = metrics
    app[HEALTH] = health
    app.middlewares.insert(0, observability_middleware(metrics))
    app.on_shutdown.append(health.on_shutdown)
    app.router.add_routes(ROUTES)
    return metrics


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is up and its event loop answers."""
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


# The routes :func:`install` adds (shared.openapi describes them in every app's document).
ROUTES = [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics_endpoint)]
