"""The queue of back-channel logout deliveries in Redis (OpenID Connect Back-Channel Logout 1.0 §2.5).

A delivery is what is needed to sign a *fresh* logout token at each attempt (a token lives two
minutes; retries last much longer): the client, the ``sub`` that client sees, the session's
``sid``, and how many attempts failed. Two keys, sharing one Cluster hash tag:

* ``logout-deliveries:{queue}`` — a sorted set of delivery ids scored by when each is due (ms, by
  Redis's clock, so replicas' clocks need not agree);
* ``logout-delivery-data:{queue}`` — a hash of delivery id to its JSON.

A worker *claims* due deliveries with one script that also pushes their due time forward by a
lease: a replica that dies mid-delivery leaves its claims in the set, due again once the lease
ends, and another replica delivers them. The claim's new due time is its fencing token: a worker
reschedules a failed delivery only if nobody has claimed it since. A delivery is deleted when it
succeeds or is given up. Entries are bounded: only a signed-in user's logout creates them, one per
client that got an ID token in that session.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace

from redis.asyncio import Redis

from auth_server.crypto import new_token
from shared.redis import Keys

# KEYS: the schedule, the data. ARGV: id, JSON. Due at once (Redis's clock).
_ENQUEUE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ms, ARGV[1])
return 1
"""

# KEYS: the schedule, the data. ARGV: lease ms, at most how many. Returns the claim's token (the
# new due time, as a string) and then id, JSON pairs. An id without data (a crash between the two
# writes of _FINISH cannot leave one, but be safe) is dropped.
_CLAIM = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'LIMIT', 0, tonumber(ARGV[2]))
local until_ms = ms + tonumber(ARGV[1])
local out = {tostring(until_ms)}
for _, id in ipairs(due) do
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    redis.call('ZADD', KEYS[1], until_ms, id)
    table.insert(out, id)
    table.insert(out, data)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: the schedule, the data. ARGV: id, claim token, delay ms, new JSON. Only if still ours.
_RESCHEDULE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
return 1
"""

# KEYS: the schedule, the data. ARGV: id.
_FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

DEFAULT_LEASE = 30.0  # seconds a claim lasts: far beyond one POST's time limit


@dataclass(frozen=True, slots=True)
class Delivery:
    """One logout token to deliver: what signing a fresh one needs, and the attempts so far."""

    client_id: str
    sub: str
    sid: str | None
    user_id: str | None = None  # the user's own id, for the audit trail
    attempts: int = 0
    id: str = ""  # set by enqueue

    def failed_once_more(self) -> Delivery:
        return replace(self, attempts=self.attempts + 1)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed by this worker until its lease ends; ``token`` fences later writes."""

    delivery: Delivery
    token: str


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retries: ``first`` seconds after the first failure, doubling up to ``longest``; given up after
    ``attempts`` attempts in all. The defaults retry for about 36 minutes."""

    first: float = 5.0
    longest: float = 900.0
    attempts: int = 10

    def delay(self, failed: int) -> float | None:
        """Seconds until the next attempt after ``failed`` failed ones; ``None``: give up."""
        if failed >= self.attempts:
            return None
        return float(min(self.first * 2 ** (failed - 1), self.longest))


class LogoutDeliveryStore:
    def __init__(self, redis: Redis, keys: Keys, *, backoff: Backoff | None = None) -> None:
        self._redis = redis
        self._keys = [keys("logout-deliveries", "queue"), keys("logout-delivery-data", "queue")]
        self.backoff = backoff or Backoff()
        # set when this process enqueues, so its worker delivers at once rather than at its next poll
        self.enqueued = asyncio.Event()
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._finish = redis.register_script(_FINISH)

    async def enqueue(self, delivery: Delivery) -> Delivery:
        """Queue ``delivery``, due now; return it with its id."""
        queued = replace(delivery, id=new_token())
        fields = asdict(queued)
        del fields["id"]
        await self._enqueue(keys=self._keys, args=[queued.id, json.dumps(fields)])
        self.enqueued.set()
        return queued

    async def claim(self, *, limit: int = 20, lease: float = DEFAULT_LEASE) -> list[Claimed]:
        """Take up to ``limit`` due deliveries for ``lease`` seconds: unless finished or rescheduled
        by then, they are due again for any worker."""
        reply = await self._claim(keys=self._keys, args=[int(lease * 1000), limit])
        token = _text(reply[0])
        claimed = []
        for ident, data in zip(reply[1::2], reply[2::2], strict=True):
            fields = json.loads(data)
            claimed.append(Claimed(Delivery(**fields, id=_text(ident)), token))
        return claimed

    async def retry_later(self, claimed: Claimed, delay: float) -> bool:
        """Count one more failed attempt and make the delivery due in ``delay`` seconds; ``False``
        (and nothing written) if another worker claimed it since this one did."""
        failed = claimed.delivery.failed_once_more()
        fields = asdict(failed)
        del fields["id"]
        done = await self._reschedule(
            keys=self._keys, args=[failed.id, claimed.token, int(delay * 1000), json.dumps(fields)]
        )
        return bool(done)

    async def finish(self, delivery: Delivery) -> None:
        """Forget ``delivery``: delivered, or given up."""
        await self._finish(keys=self._keys, args=[delivery.id])

    async def pending(self) -> list[tuple[Delivery, float]]:
        """Every queued delivery with when it is due (seconds since the epoch); for tests and
        operators."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(self._keys[0], 0, -1, withscores=True)
            pipe.hgetall(self._keys[1])
            schedule, data = await pipe.execute()
        found = {_text(k): json.loads(v) for k, v in data.items()}
        return [
            (Delivery(**found[_text(ident)], id=_text(ident)), score / 1000)
            for ident, score in schedule
            if _text(ident) in found
        ]


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
