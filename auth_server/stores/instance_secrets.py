"""The ``instance_secrets`` table: random secrets made once per installation, shared by every replica."""

from __future__ import annotations

import secrets

import asyncpg


class InstanceSecrets:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_or_create(self, name: str, size: int = 32) -> bytes:
        """The secret called ``name``, made (``size`` random bytes) the first time any replica asks."""
        await self._pool.execute(
            "INSERT INTO instance_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name,
            secrets.token_bytes(size),
        )
        value = await self._pool.fetchval("SELECT value FROM instance_secrets WHERE name = $1", name)
        assert isinstance(value, bytes)
        return value
