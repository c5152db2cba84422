"""The access-token deny-list in Redis: a revoked ``jti`` is kept until the token would have expired."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from redis.asyncio import Redis

from auth_server.stores.refresh_tokens import IssuedAccess
from shared.redis import Keys


class RevokedTokenStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        remaining = math.ceil((expires_at - datetime.now(UTC)).total_seconds())
        if remaining > 0:
            await self._redis.set(self._keys("revoked-jti", jti), b"1", ex=remaining)

    async def is_revoked(self, jti: str) -> bool:
        return bool(await self._redis.exists(self._keys("revoked-jti", jti)))

    async def revoke_all(self, accesses: Iterable[IssuedAccess]) -> None:
        for access in accesses:
            await self.revoke(access.jti, access.expires_at)
