"""Running an app as a server process: uvloop, slow-client timeouts, and ``--workers N``.

Workers are forked processes that each bind the same port with ``SO_REUSEPORT``, so the kernel
spreads connections between them; the parent only forwards SIGTERM/SIGINT and waits. Each worker
builds its own app after the fork, so no pool, socket or event loop is ever shared.

A slow client (slow-loris) cannot hold a connection open for long: aiohttp's keep-alive timer
starts when a connection opens and again after every response, and a request's headers must be
complete before it fires, however slowly the bytes trickle in. Bodies have their own deadline,
applied where they are read (:func:`shared.http.body_deadline`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from aiohttp import web

from shared import service_errors
from shared.config import Directory, Env, Integer, Text, default_dev_dir, setting


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    workers: int = 1
    header_timeout: float = 30.0  # headers of each request, and idle time between requests
    shutdown_grace: int = 30


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


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """A server command's ``--host``, ``--port`` and ``--workers``, each overriding its setting."""
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument(
        "--workers", type=int, help="processes sharing the port (SO_REUSEPORT); default 1 or the env setting"
    )


def listener(args: argparse.Namespace, settings: ListenerSettings) -> Listener:
    """Where and how a server command listens: its arguments, else its settings."""
    return Listener(
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        header_timeout=settings.header_timeout,
        shutdown_grace=settings.shutdown_grace,
    )


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
    """One process, or ``listener.workers`` forked processes sharing the port."""
    print(f"{banner}, listening on http://{listener.host}:{listener.port}", file=sys.stderr)
    if listener.workers <= 1:
        run_one(factory(), listener)
        return
    children: list[int] = []
    supervisor = os.getpid()
    for _ in range(listener.workers):
        pid = os.fork()
        if pid == 0:  # a worker: its own app, loop and connections
            raise SystemExit(_worker(factory, listener, supervisor))
        children.append(pid)
    raise SystemExit(_supervise(children))


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


def dev_data_dir_setting() -> Path:
    return setting(
        "DEV_DIR",
        Directory(),
        "Where `tessera dev` and the embedded development PostgreSQL and Redis keep their data.",
        default_factory=default_dev_dir,
        shown="`$XDG_DATA_HOME/tessera`, else `~/.local/share/tessera`",
    )
