"""Sign-ins half done, and WebAuthn challenges: short-lived state in Redis (issue 18).

A user with two-step sign-in who gave the right password is *not* signed in yet: a pending
sign-in is kept for :data:`PENDING_TTL` seconds, under the SHA-256 of a random value that only her
browser holds (a cookie of its own), with its own CSRF token. It names the user, what she has
proved so far (``amr``) and where to go once signed in; it authorizes nothing (no session, no
``/authorize`` answer reads it) and is taken once when the second step succeeds. Each failed second
step is counted on it too, and after :data:`MAX_FAILURES` it is dropped (she starts again from the
password), on top of the lockout the login page and password grant share.

A WebAuthn challenge is kept for :data:`~auth_server.two_step.passkeys.CHALLENGE_TTL` seconds
under a random id, with what it is for and who it is bound to (the signed-in user, the pending
sign-in, or the login form's cookie), and taken once (``GETDEL``): a challenge answers one
ceremony, once, for the browser that asked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys

PENDING_TTL = 300  # seconds to finish the second step
MAX_FAILURES = 5  # wrong second steps before the sign-in starts over


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    user_id: str
    username: str
    amr: tuple[str, ...]  # what she proved so far: ("pwd",), or her session's on a step-up
    return_to: str  # where to go once signed in (already checked by the login page's rules)
    csrf: str
    step_up: bool = False  # she was signed in already, and a request asks for two-step sign-in


class SignInSteps:
    def __init__(self, redis: Redis, keys: Keys, *, challenge_ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._challenge_ttl = challenge_ttl

    def _pending_key(self, token: str) -> str:
        return self._keys("sign-in-pending", hexdigest(token))

    async def start(self, pending: PendingSignIn) -> str:
        """Keep a pending sign-in; the value the browser's cookie holds for it."""
        token = new_token()
        key = self._pending_key(token)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"sign_in": json.dumps(asdict(pending)), "failures": 0})
            pipe.expire(key, PENDING_TTL)
            await pipe.execute()
        return token

    async def get(self, token: str) -> PendingSignIn | None:
        raw = await self._redis.hget(self._pending_key(token), "sign_in")
        return None if raw is None else _pending(raw)

    async def failed(self, token: str) -> bool:
        """Count a wrong second step; True if that was the last one allowed (the sign-in is gone)."""
        key = self._pending_key(token)
        failures = int(await self._redis.hincrby(key, "failures", 1))
        if failures >= MAX_FAILURES:
            await self._redis.delete(key)
            return True
        return False

    async def finish(self, token: str) -> PendingSignIn | None:
        """Take the pending sign-in, once (two answers at once: one of them gets it)."""
        key = self._pending_key(token)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, "sign_in")
            pipe.delete(key)
            raw, deleted = await pipe.execute()
        return None if raw is None or not deleted else _pending(raw)

    async def drop(self, token: str) -> None:
        await self._redis.delete(self._pending_key(token))

    # -- WebAuthn challenges ------------------------------------------------------------------------

    async def put_challenge(self, challenge: bytes, *, purpose: str, bound_to: str) -> str:
        """Keep a challenge for one ceremony (``purpose``) of ``bound_to``; its id."""
        challenge_id = new_token()
        value = json.dumps(
            {"challenge": challenge.hex(), "purpose": purpose, "bound_to": hexdigest(bound_to)}
        )
        await self._redis.set(self._keys("webauthn-challenge", challenge_id), value, ex=self._challenge_ttl)
        return challenge_id

    async def take_challenge(self, challenge_id: str, *, purpose: str, bound_to: str) -> bytes | None:
        """The challenge kept under ``challenge_id``, once, if it is for this ceremony and party."""
        if not challenge_id or len(challenge_id) > 64:
            return None
        raw = await self._redis.getdel(self._keys("webauthn-challenge", challenge_id))
        if raw is None:
            return None
        kept = json.loads(raw)
        if kept.get("purpose") != purpose or kept.get("bound_to") != hexdigest(bound_to):
            return None
        return bytes.fromhex(kept["challenge"])


def _pending(raw: bytes | str) -> PendingSignIn:
    fields = json.loads(raw)
    fields["amr"] = tuple(fields.get("amr", ()))
    return PendingSignIn(**fields)
