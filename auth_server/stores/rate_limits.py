"""Request rate limits in Redis, shared by every replica: fixed windows per client and per IP.

Each check is one round trip (a pipeline of INCR + EXPIRE per counter). A limit of 0 is off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.redis import Keys


@dataclass(frozen=True, slots=True)
class Limit:
    name: str  # what is limited, e.g. "token-ip"
    key: str  # whose budget, e.g. the IP or the client id
    per_minute: int


class RateLimitStore:
    WINDOW = 60

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def exceeded(self, *limits: Limit) -> int | None:
        """Count this request against every limit; seconds to wait if any is exceeded, else None."""
        active = [limit for limit in limits if limit.per_minute > 0]
        if not active:
            return None
        now = time.time()
        window = int(now // self.WINDOW)
        async with self._redis.pipeline(transaction=False) as pipe:
            for limit in active:
                key = self._keys(f"rate-{limit.name}", f"{limit.key}:{window}")
                pipe.incr(key)
                pipe.expire(key, self.WINDOW * 2)
            results = await pipe.execute()
        counts = results[::2]
        if any(count > limit.per_minute for count, limit in zip(counts, active, strict=True)):
            return max(1, int((window + 1) * self.WINDOW - now) + 1)
        return None
