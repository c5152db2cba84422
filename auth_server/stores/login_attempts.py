"""Failed-login counters in Redis, shared by every replica: brute-force protection.

An attempt is *reserved* before its password is checked, atomically (one script per Cluster slot),
and *settled* once checked. A bucket admits an attempt only while its failures plus the attempts in
flight stay under its limit, so guesses sent at once can never outnumber the limit: the limit-th
guess is admitted only after the ones before it have been settled. When a bucket is full of
attempts still in flight (not of failures), the next one waits briefly for them rather than being
refused, so many correct logins at once still all succeed. Three fixed-window buckets, for the
password grant and the login page alike (OWASP's Authentication Cheat Sheet; Keycloak's per-IP
lockout without permanent lockout):

* the **address** (an IPv6 client's /64): ``per_ip`` attempts, whatever the username, from
  addresses the username never signed in from;
* the **username from that address**: ``per_username`` attempts;
* the **username from addresses it never signed in from**: ``per_username`` attempts in all.
  An address the user signed in from before (within ``known_ttl``) is exempt from this bucket and
  the first, so strangers guessing names cannot lock an owner out of her usual device (nor, behind
  one shared address, everyone out of theirs); that address keeps the bucket above.

A username is counted by its canonical form (:mod:`auth_server.usernames`), hashed: the keys hold
no personal data, and the lookup and the lockout can never disagree about which name was meant.
In-flight attempts are members of a sorted set scored by when they started; one whose process
died before settling stops counting after ``STALE_MS``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from auth_server.crypto import hexdigest
from auth_server.usernames import canonical
from shared.http import address_bucket
from shared.ids import random_id
from shared.redis import Keys

STALE_MS = 30_000  # an attempt not settled by then (its process died) stops counting
WAIT_FOR_FLIGHT = 3.0  # seconds an attempt may wait for a bucket full of attempts in flight

# state(failures, in_flight, limit): > 0 the seconds a lockout lasts, -1 full of attempts in flight
# (try again shortly), 0 room for one more.
_STATE = """
local function state(fail, flight, limit, now)
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', now - tonumber(ARGV[3]))
  local failures = tonumber(redis.call('GET', fail) or '0')
  if failures >= limit then return math.max(redis.call('TTL', fail), 1) end
  if failures + redis.call('ZCARD', flight) >= limit then return -1 end
  return 0
end
local function worst(a, b)
  if a > 0 or b > 0 then return math.max(a, b) end
  return math.min(a, b)
end
local function failed(fail, window)
  local n = redis.call('INCR', fail)
  if n == 1 then redis.call('EXPIRE', fail, window) end
  return n
end
"""

# KEYS: failures, in flight. ARGV: attempt id, now (ms), stale (ms), limit.
_RESERVE_ADDRESS = (
    _STATE
    + """
local s = state(KEYS[1], KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[2]))
if s == 0 then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]); redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return s
"""
)

# KEYS: username failures, username in flight, pair failures, pair in flight, known marker (one
# hash tag). ARGV: attempt id, now (ms), stale (ms), limit. Returns {state, known}.
_RESERVE_USERNAME = (
    _STATE
    + """
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[4])
local known = redis.call('EXISTS', KEYS[5])
local s = state(KEYS[3], KEYS[4], limit, now)
if known == 0 then s = worst(s, state(KEYS[1], KEYS[2], limit, now)) end
if s == 0 then
  redis.call('ZADD', KEYS[4], now, ARGV[1]); redis.call('PEXPIRE', KEYS[4], ARGV[3])
  if known == 0 then redis.call('ZADD', KEYS[2], now, ARGV[1]); redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
return {s, known}
"""
)

# KEYS: failures, in flight. ARGV: attempt id, outcome (fail, ok, release), window.
# Returns the failures now.
_SETTLE_ADDRESS = (
    _STATE
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == 'fail' then return failed(KEYS[1], ARGV[3]) end
return tonumber(redis.call('GET', KEYS[1]) or '0')
"""
)

# KEYS: as _RESERVE_USERNAME. ARGV: attempt id, outcome (fail, ok, release), window, known (0/1),
# known TTL. Returns {username failures, pair failures}.
_SETTLE_USERNAME = (
    _STATE
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[2] == 'release' then return {0, 0} end
if ARGV[2] == 'fail' then
  local by_user = 0
  if ARGV[4] == '0' then by_user = failed(KEYS[1], ARGV[3]) end
  return {by_user, failed(KEYS[3], ARGV[3])}
end
redis.call('DEL', KEYS[3])
if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[5], '1', 'EX', ARGV[5]) end
return {0, 0}
"""
)


@dataclass(frozen=True, slots=True)
class Lockout:
    retry_after: int


class Busy(Exception):
    """A bucket stayed full of attempts in flight for longer than :data:`WAIT_FOR_FLIGHT`."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """A reserved attempt, to be settled with :meth:`LoginAttemptStore.settle`."""

    attempt_id: str
    address_keys: tuple[str, str]
    username_keys: tuple[str, str, str, str, str]
    known: bool


class LoginAttemptStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        per_username: int,
        per_ip: int,
        window: int,
        known_ttl: int = 30 * 24 * 3600,
    ) -> None:
        self._keys = keys
        self._per_username = per_username
        self._per_ip = per_ip
        self._window = window
        self._known_ttl = known_ttl
        self._reserve_address = redis.register_script(_RESERVE_ADDRESS)
        self._reserve_username = redis.register_script(_RESERVE_USERNAME)
        self._settle_address = redis.register_script(_SETTLE_ADDRESS)
        self._settle_username = redis.register_script(_SETTLE_USERNAME)

    def _keys_for(self, username: str, ip: str) -> tuple[tuple[str, str], tuple[str, str, str, str, str]]:
        bucket = address_bucket(ip)
        address = self._keys("login-fail-ip", bucket)
        user = self._keys("login-fail-user", hexdigest(canonical(username)))
        pair = f"{user}:from:{bucket}"  # the same hash tag as the username's: one script does all
        known = f"{user}:known:{bucket}"
        return (address, f"{address}:flight"), (user, f"{user}:flight", pair, f"{pair}:flight", known)

    async def reserve(self, username: str, ip: str) -> Attempt | Lockout:
        """Reserve an attempt for ``username`` from ``ip`` before its password is checked, or say
        how long logins are refused; raises :class:`Busy` when the buckets stay full of attempts in
        flight. Nothing is reserved unless an :class:`Attempt` is returned."""
        address_keys, username_keys = self._keys_for(username, ip)
        attempt_id = random_id()
        deadline = time.monotonic() + WAIT_FOR_FLIGHT
        pause = 0.01
        while True:
            now = int(time.time() * 1000)
            args: list[str | int] = [attempt_id, now, STALE_MS, self._per_username]
            state, known = (int(x) for x in await self._reserve_username(keys=username_keys, args=args))
            if state == 0 and not known:
                args = [attempt_id, now, STALE_MS, self._per_ip]
                state = int(await self._reserve_address(keys=address_keys, args=args))
                if state != 0:  # the address refused: hand the username's place back
                    args = [attempt_id, "release", self._window, known, self._known_ttl]
                    await self._settle_username(keys=username_keys, args=args)
            if state == 0:
                return Attempt(attempt_id, address_keys, username_keys, bool(known))
            if state > 0:
                return Lockout(retry_after=state)
            if time.monotonic() + pause > deadline:
                raise Busy()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def settle(self, attempt: Attempt, *, succeeded: bool | None) -> bool:
        """Record the outcome (``None``: no outcome, the check did not finish; the place is only
        handed back). A success forgets this device's failures and remembers the address as one
        the user signs in from; returns whether a failure has just started a lockout."""
        outcome = "release" if succeeded is None else "ok" if succeeded else "fail"
        args: list[str | int] = [attempt.attempt_id, outcome, self._window]
        by_address = 0
        if not attempt.known:
            by_address = int(await self._settle_address(keys=attempt.address_keys, args=args))
        by_username, by_pair = (
            int(x)
            for x in await self._settle_username(
                keys=attempt.username_keys,
                args=[*args, int(attempt.known), self._known_ttl],
            )
        )
        limits_reached = by_address == self._per_ip or self._per_username in (by_username, by_pair)
        return outcome == "fail" and limits_reached
