"""Checked authorization requests waiting for the user's consent, in Redis.

``/authorize`` stores the request it checked under a random id; the consent form carries only that
id, so nothing the browser posts back can widen what was checked. A request is stored for the user
shown the consent page and only they can take it; taking it is atomic (GETDEL): one consent
decision per request.

The request is kept as the frozen dataclass the registry names
(:class:`auth_server.authorization.request.AuthorizationRequest`), whose ``user_id`` field records
whom it was shown to; the store imports nothing of the authorization flow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Request = TypeVar("Request", bound="DataclassInstance")


class AuthorizationRequestStore(Generic[Request]):
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int, kind: type[Request]) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl
        self._kind = kind  # a frozen dataclass with a ``user_id`` field

    def _key(self, request_id: str, user_id: str) -> str:
        # the owner is part of the key: a submission by anyone else finds nothing and removes nothing
        return self._keys("authz-request", hexdigest(f"{user_id}:{request_id}"))

    async def put(self, request: Request, user_id: str) -> str:
        """Keep ``request``, shown to ``user_id``, for their decision; return its id."""
        shown = replace(request, user_id=user_id)
        request_id = new_token()
        await self._redis.set(self._key(request_id, user_id), json.dumps(asdict(shown)), ex=self._ttl)
        return request_id

    async def take(self, request_id: str, user_id: str) -> Request | None:
        """The pending request, once, and only for the user it was shown to."""
        raw = await self._redis.getdel(self._key(request_id, user_id))
        if raw is None:
            return None
        # JSON has no tuples: the request's tuple fields (its scope) come back as lists
        data = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in json.loads(raw).items()
        }
        return self._kind(**data)
