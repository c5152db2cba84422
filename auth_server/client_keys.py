"""Public keys of private_key_jwt clients: registered inline, or fetched from their ``jwks_uri``.

Fetched key sets are cached for five minutes; an unknown ``kid`` triggers a refetch at most once
per 30 seconds per URI, so a client can rotate keys without re-registering, and a flood of
assertions with made-up kids cannot turn Tessera into a request amplifier.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import jwt

from auth_server.clients import Client

log = logging.getLogger("tessera.client_keys")

CACHE_SECONDS = 300.0
REFETCH_INTERVAL = 30.0
MAX_JWKS_BYTES = 64 * 1024


class ClientKeys:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

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
        now = time.monotonic()
        cached = self._cache.get(uri)
        if cached is not None:
            fetched_at, keys = cached
            fresh = now - fetched_at < CACHE_SECONDS
            if fresh and (not refresh or now - fetched_at < REFETCH_INTERVAL):
                return keys
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:
            cached = self._cache.get(uri)
            if cached is not None and time.monotonic() - cached[0] < REFETCH_INTERVAL:
                return cached[1]
            fetched = await self._fetch(uri)
            # A failed fetch keeps the last good keys (an outage at the client's host, or a forged
            # kid that triggered the refetch, must not lock the client out); the attempt still
            # counts for the rate limit.
            keys = fetched if fetched is not None else ([] if cached is None else cached[1])
            self._cache[uri] = (time.monotonic(), keys)
            return keys

    async def _fetch(self, uri: str) -> list[dict[str, Any]] | None:
        """The key set at ``uri``, or ``None`` if it cannot be had."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.get(uri, allow_redirects=False) as response:
                if response.status != 200:
                    log.warning("client jwks_uri %s answered %s", uri, response.status)
                    return None
                body = bytearray()
                async for chunk in response.content.iter_chunked(8192):
                    body.extend(chunk)
                    if len(body) > MAX_JWKS_BYTES:
                        log.warning("client jwks_uri %s returned more than %s bytes", uri, MAX_JWKS_BYTES)
                        return None
            keys = json.loads(bytes(body)).get("keys", [])
            return [k for k in keys if isinstance(k, dict)]
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as exc:
            log.warning("could not fetch client jwks_uri %s: %r", uri, exc)
            return None


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
