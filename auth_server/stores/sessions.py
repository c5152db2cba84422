"""Browser sessions in Redis, behind a cookie holding a 256-bit random id (stored as its SHA-256).

Every visitor of the login page gets an anonymous session carrying the CSRF token of its forms;
logging in replaces it with a new id (no session fixation). A signed-in session also has a public
``sid`` (OpenID Connect Front/Back-Channel Logout's session id, carried in ID tokens: never the
cookie's secret) and remembers which clients got an ID token in it, to tell them when it ends.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    user_id: str | None = None
    username: str | None = None
    auth_time: int | None = None
    sid: str | None = None  # public id of a signed-in session (ID tokens' ``sid``)
    amr: tuple[str, ...] = ()  # how the user authenticated (RFC 8176 values): ("pwd",)

    def csrf_matches(self, presented: str) -> bool:
        return secrets.compare_digest(self.csrf.encode(), presented.encode("utf-8", "surrogatepass"))


# An anonymous session only carries the login form's CSRF token: it need not outlive the form,
# and a flood of login-page visits must not fill Redis for hours.
ANONYMOUS_TTL = 900


class SessionStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl = ttl

    def _key(self, session_id: str) -> str:
        return self._keys("session", hexdigest(session_id))

    async def create(self, session: Session | None = None) -> tuple[str, Session]:
        session_id = new_token()
        session = session or Session(csrf=new_token())
        ttl = self.ttl if session.user_id is not None else min(self.ttl, ANONYMOUS_TTL)
        await self._redis.set(self._key(session_id), json.dumps(asdict(session)), ex=ttl)
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        raw = await self._redis.get(self._key(session_id))
        if raw is None:
            return None
        fields = json.loads(raw)
        fields["amr"] = tuple(fields.get("amr", ()))
        return Session(**fields)

    async def delete(self, session_id: str) -> None:
        await self._redis.delete(self._key(session_id))

    async def log_in(
        self,
        old_session_id: str | None,
        *,
        user_id: str,
        username: str,
        now: int,
        amr: tuple[str, ...] = ("pwd",),
    ) -> str:
        """Replace the session (new id, new CSRF token) with an authenticated one; return the new id.

        Signing in again as the same user keeps the session's ``sid`` (the clients it told keep
        their sessions); a different user gets a new one."""
        old = None if old_session_id is None else await self.get(old_session_id)
        if old_session_id is not None:
            await self.delete(old_session_id)
        sid = old.sid if old is not None and old.user_id == user_id and old.sid else new_token()
        session = replace(
            Session(csrf=new_token()), user_id=user_id, username=username, auth_time=now, sid=sid, amr=amr
        )
        session_id, _ = await self.create(session)
        return session_id

    def _clients_key(self, sid: str) -> str:
        return self._keys("session-clients", hexdigest(sid))

    async def note_client(self, sid: str, client_id: str) -> None:
        """Remember that ``client_id`` got an ID token in session ``sid`` (for logout)."""
        key = self._clients_key(sid)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(key, client_id)
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def clients(self, sid: str) -> list[str]:
        """The clients that got an ID token in session ``sid``."""
        members = await self._redis.smembers(self._clients_key(sid))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    def _ended_key(self, sid: str) -> str:
        return self._keys("session-ended", hexdigest(sid))

    async def end(self, session_id: str, sid: str) -> None:
        """Delete a signed-in session and its list of clients, and remember for its lifetime that
        ``sid`` ended (an ID token issued for it later, from a code, is then refused)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(session_id))
            pipe.delete(self._clients_key(sid))
            pipe.set(self._ended_key(sid), b"1", ex=self.ttl)
            await pipe.execute()

    async def ended(self, sid: str) -> bool:
        return bool(await self._redis.exists(self._ended_key(sid)))
