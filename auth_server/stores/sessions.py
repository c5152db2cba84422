"""Browser sessions in Redis, behind a cookie holding a 256-bit random id (stored as its SHA-256).

Every visitor of the login page gets an anonymous session carrying the CSRF token of its forms;
logging in replaces it with a new id (no session fixation). A signed-in session also has a public
``sid`` (OpenID Connect Front/Back-Channel Logout's session id, carried in ID tokens: never the
cookie's secret) and remembers which clients got an ID token in it, to tell them when it ends.

Each user's signed-in sessions are indexed (a sorted set per user, scored by when each expires, its
members the sessions' handles: the SHA-256 of their cookie values, never the values), so that the
security page can list them (where, on what, since when, last seen) and end any of them, and a
password change or reset can end them all. Entries of expired or deleted sessions are dropped as
the index is read. :meth:`SessionStore.signed_in` lists a user's sessions,
:meth:`SessionStore.end_listed` ends one by its handle; to end every session of a user *and* tell
the clients that got ID tokens in them (back-channel logout), call
:func:`auth_server.oidc.logout.end_all_sessions`.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, fields, replace

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
    # for the sessions list: the address and browser it signed in from, and when its cookie was
    # last presented (updated at most every TOUCH_INTERVAL seconds)
    ip: str | None = None
    user_agent: str | None = None
    last_seen: int | None = None

    def csrf_matches(self, presented: str) -> bool:
        return secrets.compare_digest(self.csrf.encode(), presented.encode("utf-8", "surrogatepass"))


# An anonymous session only carries the login form's CSRF token: it need not outlive the form,
# and a flood of login-page visits must not fill Redis for hours.
ANONYMOUS_TTL = 900
TOUCH_INTERVAL = 60  # seconds: how stale a signed-in session's last_seen may grow before it is rewritten
MAX_USER_AGENT = 512  # characters of the User-Agent kept for the sessions list
_FIELDS = frozenset(f.name for f in fields(Session))


def handle_of(session_id: str) -> str:
    """A session's handle: the SHA-256 of its cookie value, under which it is stored and listed.
    A page may show it (the sessions list ends a session by it): it cannot be turned back into
    the cookie."""
    return hexdigest(session_id)


@dataclass(frozen=True, slots=True)
class ListedSession:
    """One of a user's signed-in sessions, as the sessions list shows it."""

    handle: str
    session: Session
    expires_at: int


class SessionStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl = ttl

    def _key(self, session_id: str) -> str:
        return self._handle_key(hexdigest(session_id))

    def _handle_key(self, handle: str) -> str:
        return self._keys("session", handle)

    def _index_key(self, user_id: str) -> str:
        return self._keys("user-sessions", user_id)

    async def create(self, session: Session | None = None) -> tuple[str, Session]:
        session_id = new_token()
        session = session or Session(csrf=new_token())
        ttl = self.ttl if session.user_id is not None else min(self.ttl, ANONYMOUS_TTL)
        await self._redis.set(self._key(session_id), json.dumps(asdict(session)), ex=ttl)
        if session.user_id is not None:
            index = self._index_key(session.user_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(index, {hexdigest(session_id): int(time.time()) + ttl})
                pipe.expire(index, ttl)  # every signed-in session lives ttl: the newest ends last
                await pipe.execute()
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        """The session under this cookie value; a signed-in one's ``last_seen`` is brought up to
        date (at most every :data:`TOUCH_INTERVAL` seconds): only the browser holds the value."""
        key = self._key(session_id)
        session = _parse(await self._redis.get(key))
        if session is None or session.user_id is None:
            return session
        now = int(time.time())
        if session.last_seen is None or now - session.last_seen >= TOUCH_INTERVAL:
            session = replace(session, last_seen=now)
            # XX: never brings back a session deleted meanwhile; KEEPTTL: its expiry stays
            await self._redis.set(key, json.dumps(asdict(session)), xx=True, keepttl=True)
        return session

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
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> str:
        """Replace the session (new id, new CSRF token) with an authenticated one; return the new id.

        Signing in again as the same user keeps the session's ``sid`` (the clients it told keep
        their sessions); a different user gets a new one. ``ip`` and ``user_agent`` are kept for
        the sessions list."""
        old = None if old_session_id is None else await self.get(old_session_id)
        if old_session_id is not None:
            await self.delete(old_session_id)
            if old is not None and old.user_id is not None:
                await self._redis.zrem(self._index_key(old.user_id), hexdigest(old_session_id))
        sid = old.sid if old is not None and old.user_id == user_id and old.sid else new_token()
        session = replace(
            Session(csrf=new_token()),
            user_id=user_id,
            username=username,
            auth_time=now,
            sid=sid,
            amr=amr,
            ip=ip,
            user_agent=None if user_agent is None else user_agent[:MAX_USER_AGENT],
            last_seen=now,
        )
        session_id, _ = await self.create(session)
        return session_id

    async def signed_in(self, user_id: str) -> list[ListedSession]:
        """The user's live signed-in sessions, the most recently signed-in first. Index entries of
        sessions that expired or were deleted are dropped on the way."""
        index = self._index_key(user_id)
        now = int(time.time())
        await self._redis.zremrangebyscore(index, "-inf", now)
        members = await self._redis.zrange(index, 0, -1, withscores=True)
        entries = [_entry(member) for member in members]
        if not entries:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for handle, _ in entries:
                pipe.get(self._handle_key(handle))
            raws = await pipe.execute()
        listed, gone = [], []
        for (handle, expires_at), raw in zip(entries, raws, strict=True):
            session = _parse(raw)
            if session is None or session.user_id != user_id:
                gone.append(handle)
            else:
                listed.append(ListedSession(handle, session, expires_at))
        if gone:
            await self._redis.zrem(index, *gone)
        listed.sort(key=lambda s: (s.session.auth_time or 0, s.handle), reverse=True)
        return listed

    async def end_listed(self, user_id: str, handle: str) -> Session | None:
        """End the session of ``user_id`` listed under ``handle`` (its list of clients goes, and
        its ``sid`` is remembered as ended, as :meth:`end` does); the session ended, or ``None`` if
        the user has no such session. Telling its clients is the caller's
        (:func:`auth_server.oidc.logout.end_all_sessions` does both)."""
        if await self._redis.zscore(self._index_key(user_id), handle) is None:
            return None
        session = _parse(await self._redis.get(self._handle_key(handle)))
        await self._redis.zrem(self._index_key(user_id), handle)
        if session is None or session.user_id != user_id:
            return None
        await self._end(self._handle_key(handle), session.sid)
        return session

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

    async def end(self, session_id: str, sid: str, *, user_id: str | None = None) -> None:
        """Delete a signed-in session and its list of clients, and remember for its lifetime that
        ``sid`` ended (an ID token issued for it later, from a code, is then refused). With
        ``user_id``, its entry in the user's index goes too (else it goes when the index is read)."""
        await self._end(self._key(session_id), sid)
        if user_id is not None:
            await self._redis.zrem(self._index_key(user_id), hexdigest(session_id))

    async def _end(self, key: str, sid: str | None) -> None:
        if sid is None:
            await self._redis.delete(key)
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.delete(self._clients_key(sid))
            pipe.set(self._ended_key(sid), b"1", ex=self.ttl)
            await pipe.execute()

    async def ended(self, sid: str) -> bool:
        return bool(await self._redis.exists(self._ended_key(sid)))


def _entry(member: object) -> tuple[str, int]:
    """A (handle, expires at) pair of a user's index, as ZRANGE ... WITHSCORES gives it."""
    assert isinstance(member, (tuple, list)) and len(member) == 2
    handle, score = member
    return handle.decode() if isinstance(handle, bytes) else str(handle), int(score)


def _parse(raw: bytes | str | None) -> Session | None:
    """A stored session; fields this version does not know (a newer replica's) are left out."""
    if raw is None:
        return None
    stored = json.loads(raw)
    stored["amr"] = tuple(stored.get("amr", ()))
    return Session(**{name: value for name, value in stored.items() if name in _FIELDS})
