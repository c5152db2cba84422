"""The ``signing_keys`` table. Private keys arrive and leave here encrypted, each with the id of the
key-encryption key that wraps it (``kek_id``; ``None`` for keys stored before ids were recorded)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_FIRST_KEY_LOCK = 0x7E55E4B
_COLUMNS = "kid, alg, public_jwk::text AS public_jwk, private_key_encrypted, activates_at, kek_id"
_INSERT = (
    "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, activates_at, kek_id)"
    " VALUES ($1, $2, $3::jsonb, $4, $5, $6)"
)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key_encrypted: bytes
    activates_at: datetime
    kek_id: str | None = None


def _record(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        kid=row["kid"],
        alg=row["alg"],
        public_jwk=json.loads(row["public_jwk"]),
        private_key_encrypted=row["private_key_encrypted"],
        activates_at=row["activates_at"],
        kek_id=row["kek_id"],
    )


def _values(key: KeyRecord) -> tuple[Any, ...]:
    return (
        key.kid,
        key.alg,
        json.dumps(key.public_jwk),
        key.private_key_encrypted,
        key.activates_at,
        key.kek_id,
    )


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def all(self) -> list[KeyRecord]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM signing_keys ORDER BY activates_at, kid")
        return [_record(r) for r in rows]

    async def add(self, key: KeyRecord) -> None:
        await self._pool.execute(_INSERT, *_values(key))

    async def add_if_none_active(self, key: KeyRecord) -> bool:
        """Insert ``key`` only if no key of its algorithm is active yet; safe when many replicas
        start at once."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _FIRST_KEY_LOCK)
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at <= now() AND alg = $1)", key.alg
            ):
                return False
            await conn.execute(_INSERT, *_values(key))
            return True

    async def rewrap_all(
        self, rewrap: Callable[[KeyRecord], KeyRecord | None]
    ) -> list[tuple[KeyRecord, KeyRecord | None]]:
        """Hand every key to ``rewrap`` in one transaction and store the records it returns.

        ``rewrap`` returns the key re-encrypted, or ``None`` to leave it as it is; if it raises,
        nothing is changed. Every row is locked, and the table is closed to writers until the
        commit, so a key added meanwhile (a rotation elsewhere) waits and cannot be skipped.
        Returns each key as it was, with what replaced it.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM signing_keys ORDER BY activates_at, kid FOR UPDATE"
            )
            done: list[tuple[KeyRecord, KeyRecord | None]] = []
            for old in map(_record, rows):
                new = rewrap(old)
                if new is not None:
                    await conn.execute(
                        "UPDATE signing_keys SET private_key_encrypted = $2, kek_id = $3 WHERE kid = $1",
                        old.kid,
                        new.private_key_encrypted,
                        new.kek_id,
                    )
                done.append((old, new))
            return done
