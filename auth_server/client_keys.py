"""Public keys of private_key_jwt clients: registered inline, or fetched from their ``jwks_uri``.

Fetched key sets are cached for five minutes; an unknown ``kid`` triggers a refetch at most once
per 30 seconds per URI, so a client can rotate keys without re-registering, and a flood of
assertions with made-up kids cannot turn Tessera into a request amplifier. A failed fetch keeps the
last good keys (an outage at the client's host must not lock the client out): a key set stays an
hour after its last fetch attempt for that, and is used past its five minutes only when a refetch
fails. The cache holds at most 1,000 URIs, least recently used out first; the lock that lets one
request at a time fetch a URI exists only while someone holds or awaits it.

Every fetch goes through :class:`shared.fetch.Fetcher`: https only, public addresses only (checked
on the resolved addresses, which are the ones connected to), no redirects, at most 64 KiB within
5 seconds. Private and loopback targets (and plain http) are allowed only for a development
issuer (``allow_private``, from ``Settings.development``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt

from auth_server.clients import Client
from shared.fetch import Fetcher, FetchError
from shared.lru import ExpiringLRU

log = logging.getLogger("tessera.client_keys")

CACHE_SECONDS = 300.0  # a key set is used without refetching for this long
REFETCH_INTERVAL = 30.0  # an unknown kid refetches at most this often per URI
STALE_IF_ERROR = 3600.0  # a key set is kept this long after its last fetch, for when a refetch fails
MAX_CACHED_URIS = 1_000
MAX_JWKS_BYTES = 64 * 1024
FETCH_TIMEOUT = 5.0


def _now() -> float:
    return time.monotonic()  # looked up on each call, so tests can move the clock on


@dataclass(slots=True)
class _UriLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


class ClientKeys:
    def __init__(self, *, allow_private: bool = False, max_uris: int = MAX_CACHED_URIS) -> None:
        self._fetcher = Fetcher(allow_private=allow_private, max_bytes=MAX_JWKS_BYTES, timeout=FETCH_TIMEOUT)
        # jwks_uri -> (time of the last fetch attempt, the last good keys)
        self._cache: ExpiringLRU[str, tuple[float, list[dict[str, Any]]]] = ExpiringLRU(max_uris, clock=_now)
        self._locks: dict[str, _UriLock] = {}

    async def close(self) -> None:
        await self._fetcher.close()

    async def find(self, client: Client, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The client's key for this ``kid`` (or its only key when no kid is given)."""
        if client.jwks is not None:
            return _select(client.jwks.get("keys", []), kid, alg)
        if client.jwks_uri is None:
            return None
        key = _select(await self._keys(client.jwks_uri, refresh=False), kid, alg)
        if key is None and kid is not None:
            key = _select(await self._keys(client.jwks_uri, refresh=True), kid, alg)
        return key

    async def _keys(self, uri: str, *, refresh: bool) -> list[dict[str, Any]]:
        now = _now()
        cached = self._cache.get(uri)
        if cached is not None:
            fetched_at, keys = cached
            fresh = now - fetched_at < CACHE_SECONDS
            if fresh and (not refresh or now - fetched_at < REFETCH_INTERVAL):
                return keys
        async with self._one_fetch_at_a_time(uri):
            cached = self._cache.get(uri)
            if cached is not None and _now() - cached[0] < REFETCH_INTERVAL:
                return cached[1]
            fetched = await self._fetch(uri)
            # A failed fetch keeps the last good keys (an outage at the client's host, or a forged
            # kid that triggered the refetch, must not lock the client out); the attempt still
            # counts for the rate limit.
            keys = fetched if fetched is not None else ([] if cached is None else cached[1])
            now = _now()
            self._cache.put(uri, (now, keys), until=now + STALE_IF_ERROR)
            return keys

    @contextlib.asynccontextmanager
    async def _one_fetch_at_a_time(self, uri: str) -> AsyncIterator[None]:
        """Hold ``uri``'s lock; it is dropped when no one holds or awaits it, so locks never pile up."""
        entry = self._locks.get(uri)
        if entry is None:
            entry = self._locks[uri] = _UriLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[uri]

    async def _fetch(self, uri: str) -> list[dict[str, Any]] | None:
        """The key set at ``uri``, or ``None`` if it cannot be had (refused, failed, or malformed)."""
        try:
            document = await self._fetcher.fetch_json(uri)
        except FetchError as error:
            log.warning("client jwks_uri not used: %s", error)
            return None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            log.warning("client jwks_uri %s did not return an object with a keys array", uri)
            return None
        return [k for k in keys if isinstance(k, dict)]


def _select(keys: list[dict[str, Any]], kid: str | None, alg: str) -> jwt.PyJWK | None:
    signing = [k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    if kid is not None:
        signing = [k for k in signing if k.get("kid") == kid]
    if len(signing) != 1:
        return None
    if any(p in signing[0] for p in ("d", "k")):
        return None  # never a private or symmetric key
    try:
        return jwt.PyJWK(signing[0], algorithm=alg)
    except jwt.PyJWTError:
        return None
