"""Pushed authorization requests (RFC 9126 §2.2, §4), in Redis.

The PAR endpoint keeps the parameters of a request it has checked under a new ``request_uri``
(:data:`PREFIX` and 256 random bits, RFC 9126 §2.2), for ``ttl`` seconds. ``/authorize`` takes them
back once, atomically (GETDEL): a second use finds nothing. The pushing client's id is part of the
key, so that a ``request_uri`` is bound to its client: presented with another client's id it finds
nothing and removes nothing (no client can spend another's). The key is a digest of the two, so
Redis never holds a usable ``request_uri``.

What is kept is the parameters, not the request as the checks established it: ``/authorize`` runs
every check on them again (RFC 9126 §4: "as it would any other authorization request"), so that a
client suspended, or a redirect URI, scope or resource taken away since the push, is caught there,
and the checks have one input whatever the request came through.

While the user signs in, ``/authorize`` pushes a request it took again under a new ``request_uri``
(:meth:`PushedRequestStore.push_again`), the one the login page returns to: each is used once, and
the parameters never pass through the browser. A request pushed again is good until a fixed time
after the client first pushed it (:data:`PUSHED_AT`, kept among its parameters), never longer:
whoever holds a ``request_uri`` can trade it for a new one by visiting ``/authorize``, but cannot
keep the request alive by doing so again and again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from redis.asyncio import Redis

from auth_server.crypto import hexdigest, new_token
from shared.redis import Keys

# RFC 9126 §2.2: the form the authorization server MAY use, with the random part after it
PREFIX = "urn:ietf:params:oauth:request_uri:"

Parameters = tuple[tuple[str, str], ...]

# Kept among a pushed request's parameters, where neither the client nor a browser can set them (the
# PAR endpoint keeps authorization request parameters only, and this store overwrites both): when
# the client pushed the request (Unix ms), carried along when it is pushed again; and until when
# the request_uri is good (Unix ms), which :meth:`PushedRequestStore.take` enforces and removes.
PUSHED_AT = "tessera_pushed_at"
_UNTIL = "tessera_until"
_OURS = frozenset({PUSHED_AT, _UNTIL})


def is_pushed(request_uri: str) -> bool:
    """Whether ``request_uri`` names a pushed request (else it would be a request object's URL,
    OpenID Connect Core §6.2, which Tessera does not fetch)."""
    return request_uri.startswith(PREFIX)


def _now_ms() -> int:
    return int(time.time() * 1000)


class PushedRequestStore:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int) -> None:
        self._redis = redis
        self._keys = keys
        self.ttl = ttl  # seconds a request_uri is good for: the PAR endpoint's expires_in

    def _key(self, request_uri: str, client_id: str) -> str:
        return self._keys("par", hexdigest(f"{client_id}:{request_uri}"))

    async def push(self, client_id: str, parameters: Iterable[tuple[str, str]]) -> str:
        """Keep ``parameters`` (in order, a repeated one repeated) for ``client_id`` alone, for
        :attr:`ttl` seconds; return the ``request_uri`` that names them."""
        now = _now_ms()
        return await self._keep(client_id, parameters, pushed_at=now, until=now + self.ttl * 1000)

    async def push_again(self, client_id: str, parameters: Iterable[tuple[str, str]], *, within: int) -> str:
        """Keep ``parameters``, taken from a ``request_uri`` (:meth:`take`), under a new one, until
        ``within`` seconds after the client first pushed them (their :data:`PUSHED_AT`), and no
        longer however often they are pushed again."""
        kept = list(parameters)
        now = _now_ms()
        first = dict(kept).get(PUSHED_AT, "")
        # one pushed before the time was kept (an older release): from now, and from now on bounded
        pushed_at = int(first) if first.isascii() and first.isdigit() else now
        return await self._keep(client_id, kept, pushed_at=pushed_at, until=pushed_at + within * 1000)

    async def _keep(
        self, client_id: str, parameters: Iterable[tuple[str, str]], *, pushed_at: int, until: int
    ) -> str:
        request_uri = PREFIX + new_token()
        kept = [[name, text] for name, text in parameters if name not in _OURS]
        kept += [[PUSHED_AT, str(pushed_at)], [_UNTIL, str(until)]]
        # take() refuses it after ``until``; Redis forgets it then (a millisecond at least)
        ttl_ms = max(1, until - _now_ms())
        await self._redis.set(self._key(request_uri, client_id), json.dumps(kept), px=ttl_ms)
        return request_uri

    async def take(self, request_uri: str, client_id: str) -> Parameters | None:
        """The parameters pushed by ``client_id`` under ``request_uri`` (with their
        :data:`PUSHED_AT`), once; None when there are none: never pushed, pushed by another client,
        expired, or taken already."""
        raw = await self._redis.getdel(self._key(request_uri, client_id))
        if raw is None:
            return None
        parameters = tuple((str(name), str(text)) for name, text in json.loads(raw))
        until = dict(parameters).get(_UNTIL)
        if until is not None and _now_ms() >= int(until):
            return None
        return tuple((name, text) for name, text in parameters if name != _UNTIL)
