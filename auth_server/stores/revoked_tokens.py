"""The access-token deny-list in Redis: what is revoked is kept until its tokens would have expired.

Two kinds of entry: a single token, by its ``jti`` (RFC 7009 revocation of an access token, a
replayed code's token, a token retired by a grace-period retry); and a whole grant, by its
``grant_id`` (a refresh-token family revoked by the client, by reuse detection or by a code
replay: every access token issued from it carries that ``grant_id`` claim). A revoked family is
one entry however many tokens it issued, so no client can inflate the list by rotating a refresh
token many times and then replaying it.

Two shapes of the same list, written together in one pipeline:

* ``revoked-jti:{jti}`` and ``revoked-grant:{grant_id}`` — one key per entry, expiring with the
  last token it covers: what introspection asks (RFC 7662);
* ``revoked-jtis:{list}`` — a sorted set of every entry (``j:<jti>`` or ``g:<grant_id>``) scored by
  that expiry: what the revocation list (:mod:`auth_server.endpoints.revocation_list`) publishes to
  resource servers.

The sorted set stays bounded without a TTL of its own: every write and every read first drops the
entries whose tokens expired more than :data:`LIST_GRACE` seconds ago, so it never holds more than
what was revoked within one access-token lifetime plus that grace. The grace is there because a
resource server accepts a token up to its clock leeway after ``exp`` (at most 300 s for the Photo
Warehouse); a revoked token must stay listed for as long as anyone would still accept it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime

from redis.asyncio import Redis

from auth_server.issued import IssuedAccess
from shared.redis import Keys

LIST_GRACE = 300  # seconds a revoked entry stays listed after its exp: the largest accepted clock leeway


class RevokedTokenStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._list = keys("revoked-jtis", "list")

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        await self.revoke_all((IssuedAccess(jti, expires_at),))

    async def is_revoked(self, jti: str, grant_id: str | None = None) -> bool:
        """Whether this access token, or the grant it was issued from (its ``grant_id``), is revoked."""
        if grant_id is None:  # one command: this is on introspection's hot path
            return bool(await self._redis.exists(self._keys("revoked-jti", jti)))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._keys("revoked-jti", jti))
            pipe.exists(self._keys("revoked-grant", grant_id))
            return any(await pipe.execute())

    async def revoke_all(self, accesses: Iterable[IssuedAccess]) -> None:
        """Deny-list single tokens, by ``jti``."""
        await self._deny({("revoked-jti", "j", access.jti): access.expires_at for access in accesses})

    async def revoke_grant(self, grant_id: uuid.UUID, accesses: Iterable[IssuedAccess]) -> None:
        """Deny-list every access token issued from a grant (a refresh-token family), as one entry
        that lasts as long as the last of ``accesses``, the family's tokens still live."""
        expiries = [access.expires_at for access in accesses]
        if expiries:
            await self._deny({("revoked-grant", "g", str(grant_id)): max(expiries)})

    async def _deny(self, entries: Mapping[tuple[str, str, str], datetime]) -> None:
        """Write entries in one round trip. Introspection honours no leeway, so the key is written
        only while a token is live; the published list also keeps an entry :data:`LIST_GRACE` longer."""
        if not entries:  # nothing to write: no pipeline (a refresh with nothing retired)
            return
        now = time.time()
        listed: dict[str, int] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for (kind, tag, ident), expires_at in entries.items():
                exp = expires_at.timestamp()
                remaining = math.ceil(exp - now)
                if remaining > 0:
                    pipe.set(self._keys(kind, ident), b"1", ex=remaining)
                if exp > now - LIST_GRACE:
                    listed[f"{tag}:{ident}"] = math.ceil(exp)
            if not listed:
                return
            pipe.zadd(self._list, listed)
            pipe.zremrangebyscore(self._list, "-inf", f"({math.floor(now) - LIST_GRACE}")
            await pipe.execute()

    async def listed(self) -> list[tuple[str, str, int]]:
        """Every entry whose tokens may still be accepted somewhere: (``"jti"`` or ``"grant_id"``,
        its value, the expiry), soonest-expiring first (one round trip: trim, then read)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._list, "-inf", f"({math.floor(time.time()) - LIST_GRACE}")
            pipe.zrange(self._list, 0, -1, withscores=True)
            _, entries = await pipe.execute()
        found = []
        for member, score in entries:
            tag, _, ident = (member.decode() if isinstance(member, bytes) else str(member)).partition(":")
            found.append(("grant_id" if tag == "g" else "jti", ident, int(score)))
        return found
