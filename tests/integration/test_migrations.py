"""Numbered SQL migrations: applied once, safe to run twice and from two processes at once."""

from __future__ import annotations

import asyncio

import asyncpg

from auth_server.schema import MIGRATIONS, SCHEMA
from shared import db


async def test_migrate_is_idempotent(empty_database: str) -> None:
    names = [m.name for m in db.load_migrations(MIGRATIONS)]
    assert await db.pending_migrations(empty_database, SCHEMA, MIGRATIONS) == names
    assert await db.migrate(empty_database, SCHEMA, MIGRATIONS) == names
    assert await db.migrate(empty_database, SCHEMA, MIGRATIONS) == []
    assert await db.pending_migrations(empty_database, SCHEMA, MIGRATIONS) == []


async def test_concurrent_migrations_apply_each_file_once(empty_database: str) -> None:
    results = await asyncio.gather(*(db.migrate(empty_database, SCHEMA, MIGRATIONS) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in db.load_migrations(MIGRATIONS))
    conn = await asyncpg.connect(empty_database)
    try:
        count = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.schema_migrations")
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", SCHEMA
            )
        }
    finally:
        await conn.close()
    assert count == len(db.load_migrations(MIGRATIONS))
    assert {
        "clients",
        "users",
        "consents",
        "refresh_tokens",
        "refresh_token_families",
        "signing_keys",
    } <= tables
