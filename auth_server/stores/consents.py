"""The ``consents`` table: which scopes a user has granted a client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: uuid.UUID
    username: str
    client_id: str
    scope: tuple[str, ...]
    granted_at: datetime


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

    async def list(self, *, user_id: uuid.UUID | None = None, client_id: str | None = None) -> list[Consent]:
        """Every remembered consent, or those of one user and/or one client."""
        rows = await self._pool.fetch(
            "SELECT c.user_id, u.username, c.client_id, c.scope, c.granted_at"
            " FROM consents c JOIN users u USING (user_id)"
            " WHERE ($1::uuid IS NULL OR c.user_id = $1) AND ($2::text IS NULL OR c.client_id = $2)"
            " ORDER BY u.username, c.client_id",
            user_id,
            client_id,
        )
        return [Consent(**{**dict(row), "scope": tuple(row["scope"])}) for row in rows]

    async def revoke(self, user_id: uuid.UUID, client_id: str) -> bool:
        """Forget a consent: the next authorization request asks the user again."""
        deleted = await self._pool.fetchval(
            "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 RETURNING true", user_id, client_id
        )
        return deleted is True
