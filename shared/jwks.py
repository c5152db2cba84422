"""One cache of fetched JWK Sets (RFC 7517 §5), with one refetch policy, for every key set fetched.

A resource server's issuer keys (:class:`shared.jwt_validation.JWKSKeySource`) and the keys of
private_key_jwt clients at their ``jwks_uri`` (:mod:`auth_server.client_keys`) are both key sets
someone else publishes and rotates. :class:`JWKSCache` holds them by URL and decides when to fetch:

* one fetch at a time per URL: concurrent lookups wait for it and share its answer;
* a key set is used without fetching for ``max_age`` seconds after the last fetch attempt;
  past that the next lookup fetches;
* a lookup that asks to ``refresh`` (an unknown ``kid``: perhaps the owner rotated) fetches at
  most once per ``min_refetch`` seconds per URL, so a flood of made-up kids cannot make this
  process hammer the owner, nor turn it into a request amplifier;
* a failed fetch (refused, failed, timed out, or not a key set) keeps the last good key set: an
  outage at the owner must not lock its tokens out. The attempt counts for ``min_refetch`` all the
  same, except while no key is held at all, when the next attempt may come after
  ``retry_without_keys`` seconds;
* a key set leaves the cache ``keep_for`` seconds after its last fetch attempt, and at most
  ``max_urls`` URLs are held, least recently used out first; a URL's lock exists only while
  someone holds or awaits it.

Every fetch goes through one :class:`shared.fetch.Fetcher` (its owner chooses the policy: private
addresses, size, time). What a document means is the caller's: ``parse`` turns the JSON into the
key set it keeps (raising ``ValueError`` for a document that is not one), and ``locate`` may map
the URL a key set is known by to the URL it is fetched from (an issuer to its metadata's
``jwks_uri``). Times are read from ``clock`` (``time.monotonic`` by default).

Imports aiohttp only (through :mod:`shared.fetch`) and changes no global state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sized
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp

from shared.fetch import Fetcher
from shared.lru import ExpiringLRU

log = logging.getLogger("tessera.jwks")

KeySet = TypeVar("KeySet", bound=Sized)

# What a failed fetch raises: the Fetcher's FetchError is an aiohttp.ClientError; a document that
# is not a key set raises ValueError (or KeyError, TypeError) from the caller's parse or locate.
FETCH_FAILURES: tuple[type[Exception], ...] = (
    aiohttp.ClientError,
    TimeoutError,
    ValueError,
    KeyError,
    TypeError,
)


@dataclass(frozen=True, slots=True)
class _Entry(Generic[KeySet]):
    keys: KeySet | None  # the last good key set; None: no fetch has succeeded yet
    attempted_at: float  # when the last fetch attempt, successful or not, ended
    refetch_at: float  # no refetch for an unknown kid before this


@dataclass(slots=True)
class _UrlLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting


def _log_failure(url: str, error: Exception) -> None:
    log.warning("could not fetch the key set at %s: %r; keeping the last good one", url, error)


class JWKSCache(Generic[KeySet]):
    """JWK Sets by URL, fetched through ``fetcher`` under one policy (see the module docstring)."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        parse: Callable[[Any], KeySet],
        min_refetch: float,
        max_age: float = math.inf,
        keep_for: float = math.inf,
        retry_without_keys: float | None = None,
        max_urls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        locate: Callable[[Fetcher, str], Awaitable[str]] | None = None,
        on_failure: Callable[[str, Exception], None] = _log_failure,
    ) -> None:
        self.fetcher = fetcher
        self.min_refetch = min_refetch
        self.max_age = max_age
        self.keep_for = keep_for
        self.retry_without_keys = min_refetch if retry_without_keys is None else retry_without_keys
        self.fetches = 0  # key sets fetched and parsed (failed attempts not counted)
        self._parse = parse
        self._clock = clock
        self._locate = locate
        self._on_failure = on_failure
        self._entries: ExpiringLRU[str, _Entry[KeySet]] = ExpiringLRU(max_urls, clock=clock)
        self._locks: dict[str, _UrlLock] = {}

    def __len__(self) -> int:
        """How many URLs' key sets are held."""
        return len(self._entries)

    @property
    def fetching(self) -> frozenset[str]:
        """The URLs being fetched, or waited for, now (each holds a lock while it is)."""
        return frozenset(self._locks)

    def peek(self, url: str) -> KeySet | None:
        """The key set held for ``url``, without fetching (``None`` if none is)."""
        entry = self._entries.get(url)
        return None if entry is None else entry.keys

    async def get(self, url: str, *, refresh: bool = False) -> KeySet | None:
        """The key set of ``url``: the one held while it is younger than ``max_age``, else fetched.

        ``refresh`` (an unknown kid) fetches even a young key set, once ``min_refetch`` has passed
        since the last attempt. ``None`` only while no fetch of ``url`` has ever succeeded.
        """
        entry = self._entries.get(url)
        if entry is not None and self._current(entry, refresh):
            return entry.keys
        async with self._one_fetch_at_a_time(url):
            entry = self._entries.get(url)
            if entry is not None and self._clock() < entry.refetch_at:
                return entry.keys  # fetched (or tried) while this caller waited
            return await self._fetch(url, entry)

    def _current(self, entry: _Entry[KeySet], refresh: bool) -> bool:
        now = self._clock()
        if now - entry.attempted_at >= self.max_age:
            return False
        return not refresh or now < entry.refetch_at

    async def _fetch(self, url: str, held: _Entry[KeySet] | None) -> KeySet | None:
        keys = None if held is None else held.keys
        wait = self.min_refetch
        try:
            source = url if self._locate is None else await self._locate(self.fetcher, url)
            keys = self._parse(await self.fetcher.fetch_json(source))
            self.fetches += 1
        except FETCH_FAILURES as error:
            self._on_failure(url, error)
            if keys is None or len(keys) == 0:
                wait = min(wait, self.retry_without_keys)  # nothing to keep: try again sooner
        now = self._clock()
        self._entries.put(url, _Entry(keys, now, now + wait), until=now + self.keep_for)
        return keys

    @contextlib.asynccontextmanager
    async def _one_fetch_at_a_time(self, url: str) -> AsyncIterator[None]:
        """Hold ``url``'s lock; it is dropped when no one holds or awaits it, so locks never pile up."""
        entry = self._locks.get(url)
        if entry is None:
            entry = self._locks[url] = _UrlLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[url]

    async def close(self) -> None:
        """Close the fetcher's connections (a later fetch opens new ones)."""
        await self.fetcher.close()
