"""Single-use identifiers in Redis (client-assertion ``jti``s): remembered until they would expire."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.redis import Keys


class UsedJtiStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def first_use(self, ident: str, ttl: int) -> bool:
        """True the first time ``ident`` is seen within ``ttl`` seconds; False on every replay."""
        return bool(await self._redis.set(self._keys("used-jti", ident), b"1", nx=True, ex=max(ttl, 1)))
