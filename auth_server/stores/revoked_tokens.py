"""The access-token deny-list in Redis: a revoked ``jti`` is kept until the token would have expired.

Two shapes of the same list, written together in one pipeline:

* ``revoked-jti:{jti}`` — one key per token, expiring with it: what introspection asks (RFC 7662);
* ``revoked-jtis:{list}`` — a sorted set of every revoked ``jti`` scored by its ``exp``: what the
  revocation list (:mod:`auth_server.endpoints.revocation_list`) publishes to resource servers.

The sorted set stays bounded without a TTL of its own: every write and every read first drops the
entries whose token expired more than :data:`LIST_GRACE` seconds ago, so it never holds more than
the tokens revoked within one access-token lifetime plus that grace. The grace is there because a
resource server accepts a token up to its clock leeway after ``exp`` (at most 300 s for the Photo
Warehouse); a revoked token must stay listed for as long as anyone would still accept it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import datetime

from redis.asyncio import Redis

from auth_server.stores.refresh_tokens import IssuedAccess
from shared.redis import Keys

LIST_GRACE = 300  # seconds a revoked jti stays listed after its exp: the largest accepted clock leeway


class RevokedTokenStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._list = keys("revoked-jtis", "list")

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        await self.revoke_all((IssuedAccess(jti, expires_at),))

    async def is_revoked(self, jti: str) -> bool:
        return bool(await self._redis.exists(self._keys("revoked-jti", jti)))

    async def revoke_all(self, accesses: Iterable[IssuedAccess]) -> None:
        """Deny-list every token still accepted anywhere, in one round trip (a family may hold many).

        Introspection honours no leeway, so the per-token key is written only while the token is
        live; the published list also takes a token expired less than :data:`LIST_GRACE` ago."""
        now = time.time()
        listed: dict[str, int] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for access in accesses:
                exp = access.expires_at.timestamp()
                remaining = math.ceil(exp - now)
                if remaining > 0:
                    pipe.set(self._keys("revoked-jti", access.jti), b"1", ex=remaining)
                if exp > now - LIST_GRACE:
                    listed[access.jti] = math.ceil(exp)
            if not listed:
                return
            pipe.zadd(self._list, listed)
            pipe.zremrangebyscore(self._list, "-inf", f"({math.floor(now) - LIST_GRACE}")
            await pipe.execute()

    async def listed(self) -> list[tuple[str, int]]:
        """Every revoked ``jti`` whose token may still be accepted somewhere, with its ``exp``,
        soonest-expiring first (one round trip: trim, then read)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._list, "-inf", f"({math.floor(time.time()) - LIST_GRACE}")
            pipe.zrange(self._list, 0, -1, withscores=True)
            _, entries = await pipe.execute()
        return [
            (member.decode() if isinstance(member, bytes) else str(member), int(score))
            for member, score in entries
        ]
