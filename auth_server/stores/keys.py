"""The ``signing_keys`` table. Private keys arrive and leave here encrypted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_FIRST_KEY_LOCK = 0x7E55E4B


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key_encrypted: bytes
    activates_at: datetime


def _record(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        kid=row["kid"],
        alg=row["alg"],
        public_jwk=json.loads(row["public_jwk"]),
        private_key_encrypted=row["private_key_encrypted"],
        activates_at=row["activates_at"],
    )


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def all(self) -> list[KeyRecord]:
        rows = await self._pool.fetch(
            "SELECT kid, alg, public_jwk::text AS public_jwk, private_key_encrypted, activates_at"
            " FROM signing_keys ORDER BY activates_at, kid"
        )
        return [_record(r) for r in rows]

    async def add(self, key: KeyRecord) -> None:
        await self._pool.execute(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, activates_at)"
            " VALUES ($1, $2, $3::jsonb, $4, $5)",
            key.kid,
            key.alg,
            json.dumps(key.public_jwk),
            key.private_key_encrypted,
            key.activates_at,
        )

    async def add_if_none_active(self, key: KeyRecord) -> bool:
        """Insert ``key`` only if no key is active yet; safe when many replicas start at once."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _FIRST_KEY_LOCK)
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at <= now())"):
                return False
            await conn.execute(
                "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, activates_at)"
                " VALUES ($1, $2, $3::jsonb, $4, $5)",
                key.kid,
                key.alg,
                json.dumps(key.public_jwk),
                key.private_key_encrypted,
                key.activates_at,
            )
            return True
