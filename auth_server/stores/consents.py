"""The ``consents`` table: which scopes a user has granted a client."""

from __future__ import annotations

import uuid

import asyncpg


class ConsentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def granted(self, user_id: uuid.UUID, client_id: str) -> frozenset[str]:
        scope = await self._pool.fetchval(
            "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2", user_id, client_id
        )
        return frozenset(scope or ())

    async def grant(self, user_id: uuid.UUID, client_id: str, scope: tuple[str, ...]) -> None:
        """Record consent to ``scope``, adding to what was granted before."""
        await self._pool.execute(
            "INSERT INTO consents (user_id, client_id, scope) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id, client_id) DO UPDATE SET"
            " scope = ARRAY(SELECT DISTINCT unnest(consents.scope || EXCLUDED.scope) ORDER BY 1),"
            " granted_at = now()",
            user_id,
            client_id,
            sorted(scope),
        )
