"""A queue of jobs in Redis that survives a replica's restart, retried with back-off: the design of
the back-channel logout deliveries, shared with the outgoing mail (:mod:`.logout_deliveries`,
:mod:`.outbox`).

Two keys, sharing one Cluster hash tag:

* a sorted set of job ids scored by when each is due (ms, by Redis's clock, so replicas' clocks
  need not agree);
* a hash of job id to its JSON.

A worker *claims* due jobs with one script that also pushes their due time forward by a lease: a
replica that dies mid-job leaves its claims in the set, due again once the lease ends, and another
replica does them. The claim's new due time is its fencing token: a worker reschedules a failed job
only if nobody has claimed it since. A job is deleted when it succeeds or is given up.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from auth_server.crypto import new_token

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

DEFAULT_LEASE = 30.0  # seconds a claim lasts: far beyond one attempt's time limit


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


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored: its id and its fields (JSON)."""

    id: str
    fields: dict[str, Any]


class DueQueue:
    """The schedule under ``schedule_key`` and the jobs' data under ``data_key`` (give both one
    Cluster hash tag). Typed stores wrap it: they turn their records into fields and back."""

    def __init__(self, redis: Redis, schedule_key: str, data_key: str) -> None:
        self._redis = redis
        self._keys = [schedule_key, data_key]
        # set when this process enqueues, so its worker starts at once rather than at its next poll
        self.enqueued = asyncio.Event()
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._finish = redis.register_script(_FINISH)

    async def enqueue(self, fields: dict[str, Any]) -> str:
        """Queue a job, due now; its new id."""
        job_id = new_token()
        await self._enqueue(keys=self._keys, args=[job_id, json.dumps(fields)])
        self.enqueued.set()
        return job_id

    async def claim(self, *, limit: int, lease: float) -> tuple[str, list[Job]]:
        """Take up to ``limit`` due jobs for ``lease`` seconds, and the claim's token: unless
        finished or rescheduled by then, they are due again for any worker."""
        reply = await self._claim(keys=self._keys, args=[int(lease * 1000), limit])
        token = _text(reply[0])
        jobs = [Job(_text(i), json.loads(data)) for i, data in zip(reply[1::2], reply[2::2], strict=True)]
        return token, jobs

    async def reschedule(self, job_id: str, token: str, delay: float, fields: dict[str, Any]) -> bool:
        """Store ``fields`` and make the job due in ``delay`` seconds; ``False`` (and nothing
        written) if another worker claimed it since the claim ``token`` was given."""
        done = await self._reschedule(
            keys=self._keys, args=[job_id, token, int(delay * 1000), json.dumps(fields)]
        )
        return bool(done)

    async def finish(self, job_id: str) -> None:
        """Forget a job: done, or given up."""
        await self._finish(keys=self._keys, args=[job_id])

    async def pending(self) -> list[tuple[Job, float]]:
        """Every queued job with when it is due (seconds since the epoch); for tests and operators."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(self._keys[0], 0, -1, withscores=True)
            pipe.hgetall(self._keys[1])
            schedule, data = await pipe.execute()
        found = {_text(k): json.loads(v) for k, v in data.items()}
        return [
            (Job(_text(ident), found[_text(ident)]), score / 1000)
            for ident, score in schedule
            if _text(ident) in found
        ]


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
