"""Tokens issued per client, for the developer console's "tokens in the last day" (issue 15)."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from shared.redis import Keys

HOUR = 3600
DAY_HOURS = 24
FLUSH_EVERY = 5.0  # seconds between a replica's additions to Redis


class TokenCounts:
    """Tokens issued per client, in hourly Redis buckets kept for a day. The token endpoint counts in
    process (no round trip per token); a replica adds its counts to Redis at most every
    :data:`FLUSH_EVERY` seconds, in the background, when it next issues a token (or is asked)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._pending: dict[tuple[str, int], int] = {}
        self._last_flush = time.monotonic()
        self._flusher: asyncio.Task[None] | None = None

    def _key(self, client_id: str, hour: int) -> str:
        return f"{self._keys('tokens-issued', client_id)}:{hour}"  # one Cluster slot per client

    def count(self, client_id: str) -> None:
        """One token issued to ``client_id`` (synchronous: no I/O here)."""
        bucket = (client_id, int(time.time()) // HOUR)
        self._pending[bucket] = self._pending.get(bucket, 0) + 1
        due = time.monotonic() - self._last_flush >= FLUSH_EVERY
        if due and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Add this replica's counts to Redis (put back if Redis is unreachable)."""
        self._last_flush = time.monotonic()
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (client_id, hour), n in pending.items():
                    pipe.incrby(self._key(client_id, hour), n)
                    pipe.expire(self._key(client_id, hour), (DAY_HOURS + 1) * HOUR)
                await pipe.execute()
        except Exception:
            for bucket, n in pending.items():
                self._pending[bucket] = self._pending.get(bucket, 0) + n

    async def last_day(self, client_id: str) -> int:
        """Tokens issued to ``client_id`` in the last 24 hours (whole hours), on every replica."""
        await self.flush()
        hour = int(time.time()) // HOUR
        values = await self._redis.mget([self._key(client_id, hour - n) for n in range(DAY_HOURS)])
        return sum(int(v) for v in values if v is not None)
