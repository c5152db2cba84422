"""Validated authorization requests waiting for the user's consent, in Redis.

``/authorize`` stores the request it checked under a random id; the consent form carries only that
id, so nothing the browser posts back can widen what was validated. Taking it is atomic (GETDEL):
one consent decision per request.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    response_type: str
    scope: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    # the user who was shown the consent page: only they can answer it
    user_id: str
    redirect_uri_given: bool = True


class AuthorizationRequestStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl

    def _key(self, request_id: str, user_id: str) -> str:
        # the owner is part of the key: a submission by anyone else finds nothing and removes nothing
        return self._keys("authz-request", hexdigest(f"{user_id}:{request_id}"))

    async def put(self, request: AuthorizationRequest) -> str:
        request_id = new_token()
        await self._redis.set(
            self._key(request_id, request.user_id), json.dumps(asdict(request)), ex=self._ttl
        )
        return request_id

    async def take(self, request_id: str, user_id: str) -> AuthorizationRequest | None:
        """The pending request, once, and only for the user it was made for."""
        raw = await self._redis.getdel(self._key(request_id, user_id))
        if raw is None:
            return None
        data = json.loads(raw)
        data["scope"] = tuple(data["scope"])
        return AuthorizationRequest(**data)
