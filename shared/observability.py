"""Request ids, structured logs and Prometheus metrics, shared by both servers.

* Every request gets an id: ``X-Request-ID`` when the caller (the gateway) sent a sane one, else a
  new one. It is returned in the response and stamped on every log record of that request.
* Logs are JSON lines (python-json-logger). One access line per request carries the method, the
  route's path *template* (never the query string, where codes and states travel), the status and
  the duration; no handler logs secrets, codes or tokens. The successful answers (2xx, 304) to the
  routes that machines poll all the time, the health probes and what an app names in ``install``'s
  ``polled`` (the auth server: ``/oauth2/revoked``, which each resource server pulls every few
  seconds), are logged at DEBUG: at INFO they would bury everything else on a developer's console
  and fill a log collector with lines that say nothing; the request metrics still count them, and
  their failures stay at INFO. An access line costs about 28 µs of CPU: while the process's one JSON
  handler is all that listens (production), it is written straight to that handler's stream, the
  same object as the record's (:class:`DirectAccessLines`), skipping a ``LogRecord`` (90 µs).
* Prometheus metrics (prometheus-client, one registry per app) count requests by route and status,
  time them, and hold what each server adds (tokens by grant, OAuth errors by code, pools). They
  are served at ``/metrics`` by :func:`metrics_app`, on a listener of its own and never on the public
  app (issue 12): ``shared/serving.py`` starts it beside the app when a metrics port is set
  (``TESSERA_METRICS_PORT``, ``TESSERA_RESOURCE_METRICS_PORT``, ``--metrics-port``).
* ``/healthz`` and ``/readyz`` stay on the public app, for the orchestrator's probes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import orjson
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


# the fields of an access line, in the order the middleware gives them
ACCESS_FIELDS = ("method", "route", "status", "duration_ms")


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's orjson formatter, with the access log's lines (one per request, the
    only lines on the hot path) made directly by :meth:`access_line`: the same object, in the same
    key order, at a quarter of the cost. Every other record takes python-json-logger's path. The
    time text is made once per second."""

    _second: int | None = None
    _second_text = ""

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._second_text},{int(msecs):03d}"  # logging.Formatter's default_msec_format

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self._time(record.created, record.msecs)

    def access_line(
        self, created: float, msecs: float, level: str, rid: str | None, fields: dict[str, Any]
    ) -> str:
        """The line of an access record: its standard fields, then ``fields`` (of ACCESS_FIELDS)."""
        line: dict[str, Any] = {
            "time": self._time(created, msecs),
            "level": level,
            "logger": access_log.name,
            "message": "request",
            "request_id": rid,
        }
        line.update(fields)
        return orjson.dumps(line).decode()

    def format(self, record: logging.LogRecord) -> str:
        attributes = record.__dict__
        fields = {name: attributes[name] for name in ACCESS_FIELDS if name in attributes}
        # any other field (one a filter added, say) takes the full path, which writes every field
        formatted_before = ("message" in attributes) + ("asctime" in attributes)  # by another handler
        if (
            record.name != access_log.name
            or record.msg != "request"
            or record.args
            or record.exc_info
            or record.stack_info
            or len(fields) + _STANDARD_ATTRIBUTES != len(attributes) - formatted_before
        ):
            return super().format(record)
        return self.access_line(
            record.created, record.msecs, record.levelname, attributes.get("request_id"), fields
        )


# what every record has (request_id included), to tell an access line that carries other fields
_STANDARD_ATTRIBUTES = len(vars(logging.LogRecord("", 0, "", 0, "", None, None))) + 1


class DirectAccessLines:
    """The access log's INFO lines written straight to the process's one JSON log handler, without
    a ``LogRecord``: a record, its handling and the formatter cost about 50 µs of a busy server's
    CPU per request (a sixth of a token), this about a quarter of that (measured, issue 19).

    Used only while that handler is the root logger's only one and nothing else listens to the
    access log (:meth:`ready`); otherwise (a test's ``caplog``, a handler someone added, DEBUG
    lines) the middleware logs records as usual. :func:`shared.logging.configure` sets it up.

    The lines of the requests answered in one turn of the event loop go out in one write, at the
    end of that turn (:meth:`flush`; a busy server answers several per turn, and a write and a
    flush per line were most of a line's cost): a line can follow another logger's line of the
    same turn, and at most one turn's lines are lost if the process is killed outright (they are
    flushed at exit)."""

    def __init__(self, handler: logging.StreamHandler[Any], formatter: JsonFormatter) -> None:
        self.handler = handler
        self.formatter = formatter
        self._handlers = [handler]
        self._filters = list(handler.filters)  # RequestIdFilter: the line has the request id
        self._pending: list[str] = []
        self._flush_in: asyncio.AbstractEventLoop | None = None  # the loop a flush is due in

    def ready(self) -> bool:
        return (
            logging.root.handlers == self._handlers
            and not access_log.handlers
            and not access_log.filters
            and access_log.propagate
            and self.handler.formatter is self.formatter
            and self.handler.filters == self._filters
            and self.handler.level <= logging.INFO
        )

    def write(self, rid: str, fields: dict[str, Any]) -> bool:
        """Write one INFO access line, at the end of this turn of the event loop (at once outside
        one); False if it could not be made (the caller logs a record instead)."""
        now = time.time()
        try:
            text = self.formatter.access_line(now, int((now - int(now)) * 1000) + 0.0, "INFO", rid, fields)
        except Exception:
            return False
        self._pending.append(text)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:  # no loop running: now
            self.flush()
        elif self._flush_in is not loop:  # once per turn (and anew in a new loop, if one closed first)
            self._flush_in = loop
            loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Write the lines made since the last flush, in one write; a failure is reported as
        logging reports its own (``Handler.handleError``)."""
        lines, self._pending, self._flush_in = self._pending, [], None
        if not lines:
            return
        terminator = self.handler.terminator
        try:
            with self.handler.lock:  # type: ignore[union-attr]  # created with the handler
                stream = self.handler.stream
                stream.write(terminator.join(lines) + terminator)
                stream.flush()
        except Exception:
            self.handler.handleError(logging.makeLogRecord({"msg": "access lines", "levelno": logging.INFO}))


_direct: DirectAccessLines | None = None


@atexit.register
def flush_access_lines() -> None:
    """Write the access lines still waiting for the end of their loop turn (at exit; a process
    leaving by ``os._exit``, a worker, calls it first)."""
    if _direct is not None:
        _direct.flush()


def write_access_lines_directly(writer: DirectAccessLines | None) -> None:
    """Set (or, with None, stop) the direct writing of access lines for this process."""
    global _direct
    if _direct is not None and _direct is not writer:
        _direct.flush()
    _direct = writer


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


# the methods counted by name; any other is counted as "other"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


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
        self._children: dict[tuple[Counter, str], Any] = {}
        self._request_counters: dict[tuple[str, str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    def record_request(self, route: str, method: str, status: int, elapsed: float) -> None:
        """One request answered: counted by route, method and status, timed by route. ``route`` is
        a path template or another name from a fixed set, never a client's path. The metric
        children are looked up once per label set and kept: ``labels()`` costs a lock and a tuple
        hash on every request otherwise, and this runs on every request of the hot path."""
        counter = self._request_counters.get((route, method, status))
        if counter is None:
            # a method of a client's choosing (uvicorn's h11 takes any token; aiohttp refuses
            # them) is "other": a stranger cannot grow the series without end
            method = method if method in METHODS else "other"
            counter = self._request_counters.get((route, method, status))
        if counter is None:
            counter = self._request_counters[(route, method, status)] = self.requests.labels(
                self.service, route, method, str(status)
            )
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self.latency.labels(self.service, route)
        counter.inc()
        latency.observe(elapsed)

    def _child(self, counter: Counter, label: str) -> Any:
        """``counter.labels(label)``, looked up once (a lock and a tuple hash per call otherwise).
        Only for labels from a fixed set: grant types served, error codes."""
        child = self._children.get((counter, label))
        if child is None:
            child = self._children[(counter, label)] = counter.labels(label)
        return child

    def count_token(self, grant_type: str) -> None:
        """An access token issued by ``grant_type`` (one this server serves)."""
        self._child(self.tokens, grant_type).inc()

    def count_error(self, error: str) -> None:
        """An OAuth error answered (a code of the RFCs, never a client's words)."""
        self._child(self.oauth_errors, error).inc()

    def watch_pool(self, pool: Any) -> None:
        """Report an asyncpg pool's saturation at every scrape."""
        self.pool_size.labels(self.service).set_function(pool.get_size)
        self.pool_in_use.labels(self.service).set_function(lambda: pool.get_size() - pool.get_idle_size())


METRICS = web.AppKey("metrics", Metrics)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


# the orchestrator's probes: their successful answers are logged at DEBUG, as those of ``polled``
PROBES = ("/healthz", "/readyz")


def observability_middleware(
    metrics: Metrics, polled: Collection[str] = ()
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Outermost middleware: request id, access log line, request metrics. The successful answers
    to the probes and to the ``polled`` routes (path templates) are logged at DEBUG.

    The requests are counted by :meth:`Metrics.record_request`.
    """
    record = metrics.record_request
    quiet = frozenset((*PROBES, *polled))

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
            level = (
                logging.DEBUG if route in quiet and (200 <= status < 300 or status == 304) else logging.INFO
            )
            if access_log.isEnabledFor(level):
                fields = {
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                }
                direct = _direct
                if (
                    level != logging.INFO
                    or direct is None
                    or not direct.ready()
                    or not direct.write(rid, fields)
                ):
                    access_log.log(level, "request", extra=fields)
            request_id.reset(token)

    return middleware


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_app(metrics: Metrics) -> web.Application:
    """The app of the metrics listener: ``GET /metrics``, the text exposition of ``metrics`` (those
    of the public app it runs beside), and nothing else."""
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_endpoint)
    return app


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


def install(app: web.Application, service: str, *, polled: Collection[str] = ()) -> Metrics:
    """Add request ids, access logs, metrics, /healthz and /readyz to an app (its metrics are
    served apart, by :func:`metrics_app`). ``polled``: the routes (path templates) other machines
    poll all the time, whose successful answers are logged at DEBUG, as the probes' are.

    Also stamps request ids on every log record of the process (:func:`stamp_request_ids`).
    """
    stamp_request_ids()
    metrics = Metrics(service)
    health = Health()
    app[METRICS] = metrics
    app[HEALTH] = health
    app.middlewares.insert(0, observability_middleware(metrics, polled))
    app.on_shutdown.append(health.on_shutdown)
    app.router.add_routes(ROUTES)
    return metrics


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process is up and its event loop answers."""
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


# The routes :func:`install` adds (shared.openapi describes them in every app's document).
ROUTES = [web.get("/healthz", healthz), web.get("/readyz", readyz)]
