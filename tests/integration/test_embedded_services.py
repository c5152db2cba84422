"""The development default: real PostgreSQL and Redis from pip packages, no Docker, no system services."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from shared import embedded


async def test_embedded_servers_start_serve_and_persist(tmp_path: Path) -> None:
    try:
        url = embedded.postgres_url(tmp_path)
        redis_url = embedded.redis_url(tmp_path)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE kept (v text)")
            await conn.execute("INSERT INTO kept VALUES ('still here')")
            assert await conn.fetchval("SHOW server_version_num") >= "160000"
        finally:
            await conn.close()
        redis = Redis.from_url(redis_url)
        try:
            assert await redis.set("k", "v")
            assert await redis.get("k") == b"v"
        finally:
            await redis.aclose()
        # a second call reuses the running servers
        assert embedded.postgres_url(tmp_path) == url
        assert embedded.redis_url(tmp_path) == redis_url
        embedded.stop(tmp_path)
        # ...and after a stop, a start finds the data again
        conn = await asyncpg.connect(embedded.postgres_url(tmp_path))
        try:
            assert await conn.fetchval("SELECT v FROM kept") == "still here"
        finally:
            await conn.close()
    finally:
        embedded.stop(tmp_path)
