"""PostgreSQL: connection pools and the numbered-SQL migration runner.

Each server keeps its tables in its own schema. ``migrate`` holds a session-level advisory lock
while it works, so two replicas (or two ``tessera migrate`` runs) started at once apply each
migration exactly once; every file runs in its own transaction together with its bookkeeping row.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

log = logging.getLogger("tessera.db")

_MIGRATION_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x7E55E4A  # one advisory lock for all Tessera migrations in a database

# Failures that mean PostgreSQL cannot be reached now (the request may succeed in a moment): an
# app's error middleware answers them with 503 temporarily_unavailable rather than 500.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,  # Postgres restarting
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InternalClientError,  # asyncpg's protocol state when the server vanished mid-operation
    ConnectionError,
    TimeoutError,
    socket.gaierror,  # the server's host name does not resolve
    FileNotFoundError,  # its Unix socket is gone (a local server stopped)
)


class NotMigrated(RuntimeError):
    """The database lacks migrations a server needs: ``tessera migrate`` applies them."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """The numbered ``.sql`` files shipped in ``package``, in order."""
    folder: Traversable = resources.files(package)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {package}")
    return found


async def migrate(dsn: str, schema: str, package: str, *, target: int | None = None) -> list[str]:
    """Apply the pending migrations of ``package`` to ``schema``; return the names applied.

    ``target`` stops at that version (inclusive): tests build a database as an older release left it.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"bad schema name {schema!r}")
    migrations = [m for m in load_migrations(package) if target is None or m.version <= target]
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {
                r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
            }
            done: list[str] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                    await conn.execute(migration.sql)
                    await conn.execute(
                        f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                log.info("applied migration %s to schema %s", migration.name, schema)
                done.append(migration.name)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """Released connections need no reset query: asyncpg has already rolled back any transaction,
    and the stores keep no session state (no SET, LISTEN or session-level locks; migrations use a
    connection of their own). Skipping it saves a round trip on every release."""


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see ``schema`` first on the search path."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{schema}, public", "application_name": f"tessera-{schema}"},
        # a Postgres that hangs, rather than refuses, must not hang requests forever
        command_timeout=10,
        timeout=5,
        reset=_no_session_state,
    )
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection whose return to the pool never fails the request.

    When PostgreSQL goes away just after a transaction committed, handing the connection back can
    raise; the work is done, and the caller must get its answer (a client that never sees its
    rotated refresh token would retry, and the retry would read as reuse). asyncpg drops such a
    connection itself, so it is only logged here.
    """
    conn = await pool.acquire()
    try:
        yield conn
    finally:
        try:
            await pool.release(conn)
        except Exception as exc:
            log.warning("a database connection broke on its way back to the pool: %r", exc)


async def pending_migrations(dsn: str, schema: str, package: str) -> list[str]:
    """Names of the migrations of ``package`` not yet applied to ``schema``."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        table = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.schema_migrations")
        applied: set[int] = set()
        if table is not None:
            applied = {
                r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")
            }
    finally:
        await conn.close()
    return [m.name for m in load_migrations(package) if m.version not in applied]
