"""Request rate limits in Redis, shared by every replica: fixed one-minute windows per client and per IP.

A round trip to Redis per request would cost more CPU than signing the token (redis-py spends
tens of microseconds on each pipeline), so counts are batched:

- the first use of a counter in a window is synchronous (``INCR`` in Redis), so a replica never
  starts a window blind to what the others have counted;
- after that, each replica counts locally and adds its counts to Redis every ``sync_interval``
  seconds in one pipeline, learning the global totals from the replies;
- a decision is the last global total Redis reported plus this replica's counts not yet sent.

Batching is only for high limits, and only far from them. A limit below ``BATCHED_FROM`` per
minute (the login and /authorize guards against credential stuffing) is counted exactly, a round
trip each time; so is any counter a replica knows to be past ``EXACT_NEAR`` of its limit. Replicas
batching together can overshoot only by what they admit between two syncs while each still
believes the counter below that mark. ``sync_interval`` 0 makes every check exact. A limit of 0
is off.

A limit may count over a longer window than a minute (``Limit.window``: sign-ups per address per
hour, reset mails per address per hour). Such limits are always counted exactly, in windows of
their own length.

While Redis is away, limits apply per replica (they fail open to local counting rather than
refuse everything), and the counts are sent when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.redis import UNAVAILABLE_ERRORS, Keys

log = logging.getLogger("tessera.rate_limits")


@dataclass(frozen=True, slots=True)
class Limit:
    name: str  # what is limited, e.g. "token-ip"
    key: str  # whose budget, e.g. the IP or the client id
    per_minute: int  # the budget of one window: a minute, unless ``window`` says otherwise
    window: int = 60  # seconds; a longer one (an hour...) is counted exactly, in windows of that length


class RateLimitStore:
    WINDOW = 60
    BATCHED_FROM = 6000  # per minute: lower limits are security guards, counted exactly
    EXACT_NEAR = 0.8  # past this share of a limit, every request is a round trip again

    def __init__(self, redis: Redis, keys: Keys, sync_interval: float = 0.1) -> None:
        self._redis = redis
        self._keys = keys
        self._sync_interval = sync_interval
        self._window = 0
        self._totals: dict[str, int] = {}  # Redis key -> the global count Redis last reported
        self._pending: dict[str, int] = {}  # Redis key -> counted here, not yet sent
        self._flusher: asyncio.Task[None] | None = None
        self._failing = False

    async def exceeded(self, *limits: Limit) -> int | None:
        """Count this request against every limit; seconds to wait if any is exceeded, else None.
        (One pass over the limits: this runs on every token request.)"""
        now = time.time()
        window = int(now // self.WINDOW)
        if window != self._window:  # last window's counts decide nothing any more
            self._window, self._totals, self._pending = window, {}, {}
        keyed: list[tuple[str, Limit]] = []
        synchronous: dict[str, int] = {}
        for limit in limits:
            if limit.per_minute <= 0:
                continue
            key = self._key(limit, now)
            keyed.append((key, limit))
            if self._exact(key, limit):
                # a counter going exact takes its unsent counts along, so Redis holds all of this replica's
                synchronous[key] = 1 + self._pending.pop(key, 0)
        if not keyed:
            return None
        if synchronous:
            lifetimes = {key: limit.window * 2 for key, limit in keyed if key in synchronous}
            if not await self._send(synchronous, lifetimes):
                for key, count in synchronous.items():  # Redis is away: count here, send later
                    self._pending[key] = self._pending.get(key, 0) + count - 1
                synchronous = {}
        pending, totals = self._pending, self._totals  # as they are after any round trip
        for key, _ in keyed:
            if key not in synchronous:
                pending[key] = pending.get(key, 0) + 1
        if pending:
            self._schedule_flush()
        wait: int | None = None
        for key, limit in keyed:
            if totals.get(key, 0) + pending.get(key, 0) > limit.per_minute:
                until = _until_next(limit, now)
                wait = until if wait is None else max(wait, until)
        return wait

    def _key(self, limit: Limit, now: float) -> str:
        return self._keys(f"rate-{limit.name}", f"{limit.key}:{int(now // limit.window)}")

    def _exact(self, key: str, limit: Limit) -> bool:
        """Whether this request must be counted in Redis now rather than in the next batch."""
        if self._sync_interval <= 0 or limit.per_minute < self.BATCHED_FROM or key not in self._totals:
            return True
        if limit.window != self.WINDOW:
            return True
        return self._totals[key] + self._pending.get(key, 0) >= limit.per_minute * self.EXACT_NEAR

    def known_exceeded(self, limit: Limit) -> int | None:
        """Seconds to wait if this replica already knows ``limit`` is exceeded; counts nothing and
        asks Redis nothing (a free check before costly work, such as authenticating a client)."""
        if limit.per_minute <= 0:
            return None
        now = time.time()
        window = int(now // self.WINDOW)
        if window != self._window:
            return None
        key = self._key(limit, now)
        if self._totals.get(key, 0) + self._pending.get(key, 0) > limit.per_minute:
            return _until_next(limit, now)
        return None

    async def _send(self, counts: dict[str, int], lifetimes: dict[str, int] | None = None) -> bool:
        """Add counts in one pipeline and remember the totals Redis answers with.

        False when Redis is unreachable: limits fail open rather than refuse every request (the
        request still fails on its own if it needs Redis), and the counts wait for the next try.
        """
        window = self._window
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, count in counts.items():
                    pipe.incrby(key, count)
                    pipe.expire(key, (lifetimes or {}).get(key, self.WINDOW * 2))
                results = await pipe.execute()
        except UNAVAILABLE_ERRORS as exc:
            if not self._failing:
                log.warning(
                    "rate-limit counts not sent, limits apply per replica until Redis is back: %r", exc
                )
            self._failing = True
            for key in counts:
                self._totals.setdefault(key, 0)  # known from now on: no round trip per request while away
            return False
        self._failing = False
        if window == self._window:  # a window that has rolled over meanwhile decides nothing
            for key, total in zip(counts, results[::2], strict=True):
                self._totals[key] = max(self._totals.get(key, 0), int(total))
        return True

    def _schedule_flush(self) -> None:
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_while_pending())

    async def _flush_while_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(self._sync_interval)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending, window = self._pending, {}, self._window
        if batch and not await self._send(batch) and window == self._window:
            for key, count in batch.items():  # keep this window's counts for the next try
                self._pending[key] = self._pending.get(key, 0) + count

    async def close(self) -> None:
        """Send what is counted (best effort) and stop the background sender."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        await self._flush()


def _until_next(limit: Limit, now: float) -> int:
    """Seconds until ``limit``'s next window starts (a Retry-After)."""
    return max(1, int((int(now // limit.window) + 1) * limit.window - now) + 1)
