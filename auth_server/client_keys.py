"""Public keys of private_key_jwt clients: registered inline, or fetched from their ``jwks_uri``.

Fetched key sets are cached for five minutes; an unknown ``kid`` triggers a refetch at most once
per 30 seconds per URI, so a client can rotate keys without re-registering, and a flood of
assertions with made-up kids cannot turn Tessera into a request amplifier. A failed fetch keeps the
last good keys (an outage at the client's host must not lock the client out): a key set stays an
hour after its last fetch attempt for that, and is used past its five minutes only when a refetch
fails. The cache holds at most 1,000 URIs, least recently used out first; the lock that lets one
request at a time fetch a URI exists only while someone holds or awaits it. The policy is
:class:`shared.jwks.JWKSCache`'s, the one the resource servers' issuer keys follow too; the limits
are this module's.

Every fetch goes through :class:`shared.fetch.Fetcher`: https only, public addresses only (checked
on the resolved addresses, which are the ones connected to), no redirects, at most 64 KiB within
5 seconds. Private and loopback targets (and plain http) are allowed only for a development
issuer (``allow_private``, from ``Settings.development``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt

from auth_server.clients import Client
from shared.fetch import Fetcher, FetchError
from shared.jwks import JWKSCache

log = logging.getLogger("tessera.client_keys")

CACHE_SECONDS = 300.0  # a key set is used without refetching for this long
REFETCH_INTERVAL = 30.0  # an unknown kid refetches at most this often per URI
STALE_IF_ERROR = 3600.0  # a key set is kept this long after its last fetch attempt, for when a refetch fails
MAX_CACHED_URIS = 1_000
MAX_JWKS_BYTES = 64 * 1024
FETCH_TIMEOUT = 5.0


def _now() -> float:
    return time.monotonic()  # looked up on each call, so tests can move the clock on


def _key_list(document: Any) -> list[dict[str, Any]]:
    """The JWK objects of a key set document; ValueError if it is not one (a failed fetch)."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ValueError("not an object with a keys array")
    return [k for k in keys if isinstance(k, dict)]


def _fetch_failed(uri: str, error: Exception) -> None:
    if isinstance(error, FetchError):
        log.warning("client jwks_uri not used: %s", error)
    else:
        log.warning("client jwks_uri %s did not return an object with a keys array", uri)


class ClientKeys:
    def __init__(self, *, allow_private: bool = False, max_uris: int = MAX_CACHED_URIS) -> None:
        fetcher = Fetcher(allow_private=allow_private, max_bytes=MAX_JWKS_BYTES, timeout=FETCH_TIMEOUT)
        # jwks_uri -> the last good keys, under shared.jwks' policy with the limits above
        self._cache: JWKSCache[list[dict[str, Any]]] = JWKSCache(
            fetcher,
            parse=_key_list,
            max_age=CACHE_SECONDS,
            min_refetch=REFETCH_INTERVAL,
            keep_for=STALE_IF_ERROR,
            max_urls=max_uris,
            clock=_now,
            on_failure=_fetch_failed,
        )

    @property
    def _locks(self) -> frozenset[str]:
        """The URIs being fetched now (each with a lock, dropped when no one holds or awaits it)."""
        return self._cache.fetching

    async def close(self) -> None:
        await self._cache.close()

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
        # A failed fetch keeps the last good keys (an outage at the client's host, or a forged kid
        # that triggered the refetch, must not lock the client out); the attempt still counts for
        # the rate limit.
        return await self._cache.get(uri, refresh=refresh) or []


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
