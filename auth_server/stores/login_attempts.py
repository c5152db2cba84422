"""Failed-login counters in Redis, shared by every replica: brute-force protection.

Failures are counted per username and per client IP in a fixed window. Once either count reaches
its threshold, logins for that username (or from that IP) are refused until the window ends, for
the password grant and the login page alike. A success clears the username's count.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from auth_server.crypto import hexdigest
from shared.redis import Keys

_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True, slots=True)
class Lockout:
    retry_after: int


class LoginAttemptStore:
    def __init__(self, redis: Redis, keys: Keys, *, per_username: int, per_ip: int, window: int) -> None:
        self._redis = redis
        self._keys = keys
        self._per_username = per_username
        self._per_ip = per_ip
        self._window = window
        self._fail = redis.register_script(_FAIL)

    def _user_key(self, username: str) -> str:
        # hashed: usernames are personal data, and keys must not depend on their characters
        return self._keys("login-fail-user", hexdigest(username.casefold()))

    def _ip_key(self, ip: str) -> str:
        return self._keys("login-fail-ip", ip)

    async def lockout(self, username: str, ip: str) -> Lockout | None:
        """Whether logins for ``username`` or from ``ip`` are refused now, and for how long."""
        user_key, ip_key = self._user_key(username), self._ip_key(ip)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in (user_key, ip_key):
                pipe.get(key)
                pipe.ttl(key)
            user_count, user_ttl, ip_count, ip_ttl = await pipe.execute()
        waits = []
        if user_count is not None and int(user_count) >= self._per_username:
            waits.append(user_ttl)
        if ip_count is not None and int(ip_count) >= self._per_ip:
            waits.append(ip_ttl)
        if not waits:
            return None
        return Lockout(retry_after=max(1, *waits))

    async def failed(self, username: str, ip: str) -> bool:
        """Count a failure; True if it is the one that starts a lockout (of the username or the IP)."""
        by_user = int(await self._fail(keys=[self._user_key(username)], args=[self._window]))
        by_ip = int(await self._fail(keys=[self._ip_key(ip)], args=[self._window]))
        return by_user == self._per_username or by_ip == self._per_ip

    async def succeeded(self, username: str) -> None:
        await self._redis.delete(self._user_key(username))
