"""Running an app as a server process: uvloop, slow-client timeouts, ``--workers N``, and the
listeners beside the public one.

Workers are forked processes that each bind the same port with ``SO_REUSEPORT``, so the kernel
spreads connections between them; the parent only forwards SIGTERM/SIGINT and waits. Each worker
builds its own app after the fork, so no pool, socket or event loop is ever shared.

A slow client (slow-loris) cannot hold a connection open for long: aiohttp's keep-alive timer
starts when a connection opens and again after every response, and a request's headers must be
complete before it fires, however slowly the bytes trickle in. Bodies have their own deadline,
applied where they are read (:func:`shared.http.body_deadline`).

:func:`serve_beside` runs another app on a port of its own for as long as the public app runs: the
admin API (``auth_server/admin_api/app.py``) and, when a metrics port is set, Prometheus
``/metrics`` (:func:`shared.observability.metrics_app`), which the public app never serves. Each
worker has its own metrics, so worker i serves them on the metrics port + i.

**Why not gunicorn** (issue 12, item 7). aiohttp documents running under gunicorn with its
``aiohttp.GunicornWebWorker`` (``GunicornUVLoopWebWorker`` for uvloop). That would keep
``--workers``, uvloop, the drain on SIGTERM and, with gunicorn 23's ``--reuse-port``, one
``SO_REUSEPORT`` socket per worker, so the throughput should stay what it is (not measured: the
reasons below do not depend on it). It would lose what this supervisor is for:

* a worker that cannot start says why in one line (``tessera: cannot connect to PostgreSQL at
  ...``, :func:`shared.service_errors.explain`; ``tests/unit/test_worker_failure.py``,
  ``tests/integration/test_serving.py``); gunicorn logs the traceback through its own logger and
  halts with "Worker failed to boot";
* a worker that fails stops them all and the process exits non-zero, so the orchestrator restarts
  it and shows why; gunicorn's arbiter restarts a dead worker itself, and a crash loop hides inside
  a pod that looks alive;
* ``--workers 1`` is one process, which holds the port: ``tessera dev`` checks that the process
  it started listens (``tests/integration/test_dev_lifecycle.py``); gunicorn always adds an
  arbiter, and with ``--reuse-port`` only its workers listen;
* SIGINT drains like SIGTERM, and a second signal to the whole group (a terminal, systemd) does not
  cut the drain short; in gunicorn SIGINT is the quick shutdown;
* workers die with the supervisor at once, even when it is killed with SIGKILL
  (``PR_SET_PDEATHSIG``), where gunicorn's notice a new parent at their next one-second heartbeat;
* no heartbeat file (gunicorn's workers touch one every second, so the read-only containers of
  ``deploy/k8s`` would need a writable ``--worker-tmp-dir``), no second configuration (gunicorn
  also reads ``gunicorn.conf.py`` from the working directory and ``GUNICORN_CMD_ARGS``) and no
  second logging setup beside :mod:`shared.logging`.

The supervisor is under a hundred lines; gunicorn would replace them with a dependency, a shim to
embed it in ``tessera``, and a different behaviour on failure that the tests above would have to
change to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from aiohttp import web

from shared import observability, service_errors
from shared.config import ConfigError, Directory, Env, Integer, Text, default_dev_dir, setting

_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    workers: int = 1
    header_timeout: float = 30.0  # headers of each request, and idle time between requests
    shutdown_grace: int = 30
    # /metrics on a listener of its own on ``host``, never the public port; 0: not served. Under
    # ``--workers N`` worker i serves its own metrics on ``metrics_port + i`` (see :func:`serve`).
    metrics_port: int = 0


class ListenerSettings(Protocol):
    """The listening settings each server declares (``TESSERA_HOST``/``TESSERA_RESOURCE_HOST``, ...)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def workers(self) -> int: ...
    @property
    def header_timeout(self) -> int: ...
    @property
    def shutdown_grace(self) -> int: ...
    @property
    def metrics_port(self) -> int: ...


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """A server command's ``--host``, ``--port``, ``--workers`` and ``--metrics-port``, each
    overriding its setting."""
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--workers", type=int, help="processes sharing the port (SO_REUSEPORT); default 1 or the env setting"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics on this port of the same host, never the public one"
        " (worker i of --workers: this port + i); default: the env setting, else off",
    )


def listener(args: argparse.Namespace, settings: ListenerSettings) -> Listener:
    """Where and how a server command listens: its arguments, else its settings."""
    chosen = Listener(
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        header_timeout=settings.header_timeout,
        shutdown_grace=settings.shutdown_grace,
        metrics_port=args.metrics_port or settings.metrics_port,
    )
    if chosen.metrics_port:
        last = chosen.metrics_port + chosen.workers - 1
        if chosen.metrics_port <= chosen.port <= last or last > _MAX_PORT:
            raise ConfigError(
                f"the metrics port {_metrics_ports(chosen)} (one per worker) must be a valid port other"
                f" than the public port {chosen.port}"
            )
    return chosen


def _metrics_ports(listener: Listener) -> str:
    """``P``, or ``P-Q`` for the ports of several workers."""
    last = listener.metrics_port + listener.workers - 1
    return str(listener.metrics_port) if last == listener.metrics_port else f"{listener.metrics_port}-{last}"


def serve_beside(
    app: web.Application,
    build: Callable[[web.Application], web.Application],
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
) -> None:
    """Serve another app, ``build(app)``, on a port of its own for as long as ``app`` runs (the
    admin API, ``/metrics``): its own ``AppRunner`` and ``TCPSite``, appended to ``app``'s
    ``cleanup_ctx`` after what is there, so it starts once those resources are open and stops
    before they close. The public app's signal handling and graceful drain stay as they are.
    ``reuse_port``: several worker processes bind the port (``--workers``)."""

    async def beside(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(build(app), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
            yield
        finally:
            await runner.cleanup()

    app.cleanup_ctx.append(beside)


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows): the standard loop works, slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _freeze_startup_objects(app: web.Application) -> None:
    """Everything built at start-up (modules, pools, caches) lives as long as the process; moved
    out of the collector's reach, a full collection no longer walks it and pauses requests."""
    gc.collect()
    gc.freeze()


_stop_requested = False  # this process got SIGTERM/SIGINT (each worker is its own process)


def run_one(app: web.Application, listener: Listener, reuse_port: bool = False) -> None:
    """Serve until SIGTERM/SIGINT, then give in-flight requests ``shutdown_grace`` seconds.

    Only the first signal counts: under ``--workers`` a worker may get the same stop twice (from
    the supervisor, and straight from a terminal or systemd signalling the whole group), and a
    second one must not cut the drain short.
    """
    app.on_startup.append(_freeze_startup_objects)
    if listener.metrics_port:
        serve_beside(
            app,
            lambda app: observability.metrics_app(app[observability.METRICS]),
            listener.host,
            listener.metrics_port,
        )
    loop = _event_loop()

    def stop() -> None:
        global _stop_requested
        if not _stop_requested:
            _stop_requested = True
            raise web.GracefulExit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: aiohttp's own handling applies
            loop.add_signal_handler(signum, stop)
    web.run_app(
        app,
        host=listener.host,
        port=listener.port,
        reuse_port=reuse_port or None,
        print=None,
        access_log=None,
        shutdown_timeout=listener.shutdown_grace,
        keepalive_timeout=listener.header_timeout,
        handle_signals=False,
        loop=loop,
    )


def serve(factory: Callable[[], web.Application], listener: Listener, banner: str) -> None:
    """One process, or ``listener.workers`` forked processes sharing the port.

    Each worker has its own metrics (its own app), so each serves them on a port of its own,
    ``metrics_port + i``: a scrape of one port always reaches the same worker, whose counters then
    only ever grow (sharing one port, successive scrapes would reach different workers)."""
    where = f"http://{listener.host}:{listener.port}"
    print(f"{banner}, listening on {where}{_metrics_banner(listener)}", file=sys.stderr)
    if listener.workers <= 1:
        run_one(factory(), listener)
        return
    children: list[int] = []
    supervisor = os.getpid()
    for index in range(listener.workers):
        own = listener
        if listener.metrics_port:
            own = dataclasses.replace(listener, metrics_port=listener.metrics_port + index)
        pid = os.fork()
        if pid == 0:  # a worker: its own app, loop and connections
            raise SystemExit(_worker(factory, own, supervisor))
        children.append(pid)
    raise SystemExit(_supervise(children))


def _metrics_banner(listener: Listener) -> str:
    if not listener.metrics_port:
        return ""
    return f", metrics on http://{listener.host}:{_metrics_ports(listener)}/metrics"


def _worker(factory: Callable[[], web.Application], listener: Listener, supervisor: int) -> int:
    _die_with_the_supervisor(supervisor)
    code = 0
    try:
        run_one(factory(), listener, reuse_port=True)
    except BaseException as error:
        code = 1
        # os._exit below would swallow it: say why this worker failed, in one line when it is a
        # database or Redis that cannot be reached (as the tessera command itself does). The stop
        # the supervisor sends when another worker failed may land while this one is failing too,
        # and then hides the reason under a GracefulExit or "Event loop stopped": look beneath.
        explained = service_errors.explain(error, Env(os.environ))
        if explained is not None:
            print(f"tessera: {explained}", file=sys.stderr)
        elif not _stop_requested:
            traceback.print_exc()
        sys.stderr.flush()
    finally:
        try:
            observability.flush_access_lines()  # os._exit runs no atexit handler
        finally:  # even if a second Ctrl-C lands in it: this process must not return to its parent's stack
            os._exit(code)
    return code  # pragma: no cover - os._exit never returns


def _die_with_the_supervisor(supervisor: int) -> None:
    """Linux: stop when the supervisor dies (even by SIGKILL), so no orphan keeps the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != supervisor:  # it died before the line above ran
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _supervise(children: list[int]) -> int:
    """Forward SIGTERM/SIGINT to every worker; when one fails, stop the rest (the orchestrator restarts)."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    remaining = set(children)
    while remaining:
        pid, raw = os.wait()
        remaining.discard(pid)
        code = os.waitstatus_to_exitcode(raw)
        if code != 0 and status == 0:
            status = code if code > 0 else 128 - code
            forward(signal.SIGTERM, None)
    return status


# --- the settings every server process shares, declared once (each server's settings use them) ------

SECONDS = "seconds"


def shutdown_grace_setting() -> int:
    return setting(
        "SHUTDOWN_GRACE",
        Integer(maximum=600, unit=SECONDS),
        "How long in-flight requests may finish after SIGTERM.",
        default=30,
    )


def header_timeout_setting() -> int:
    return setting(
        "HEADER_TIMEOUT",
        Integer(minimum=1, maximum=3600, unit=SECONDS),
        "How long a request's headers may take to arrive, and a connection may stay idle between"
        " requests (slow-loris guard).",
        default=30,
    )


def body_timeout_setting(default: int, doc: str) -> int:
    return setting("BODY_TIMEOUT", Integer(minimum=1, maximum=3600, unit=SECONDS), doc, default=default)


def workers_setting(key: str) -> int:
    return setting(
        key,
        Integer(minimum=1, maximum=256),
        "Server processes sharing the port (SO_REUSEPORT); `--workers` on the command line wins.",
        default=1,
    )


def host_setting(key: str) -> str:
    return setting(key, Text("an address"), "Listen address.", default="127.0.0.1")


def port_setting(key: str, default: int) -> int:
    return setting(key, Integer(maximum=65535), "Listen port.", default=default)


def metrics_port_setting(key: str, *, workers: bool = True) -> int:
    """``workers``: the server has ``--workers``, each serving its own metrics."""
    each = " with `--workers N`, worker i serves its own on this port + i." if workers else ""
    return setting(
        key,
        Integer(maximum=65535),
        "Port of Prometheus `/metrics`, a listener of its own on the listen address (never the public"
        f" port, which does not serve it);{each} 0: no metrics served. `--metrics-port` on the command"
        " line wins.",
        default=0,
    )


def dev_data_dir_setting() -> Path:
    return setting(
        "DEV_DIR",
        Directory(),
        "Where `tessera dev` and the embedded development PostgreSQL and Redis keep their data.",
        default_factory=default_dev_dir,
        shown="`$XDG_DATA_HOME/tessera`, else `~/.local/share/tessera`",
    )
