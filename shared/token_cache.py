"""Claims of access tokens already verified, kept until they expire: signature checks are the
costliest step of validating a token, and a client presents the same token many times.

Keyed by the SHA-256 of the token (the cache holds no usable token), bounded, least recently used
first out. Revocation is not cached here: whoever needs it checks it on every use, cache hits
included (``TokenValidator`` with a ``RevocationList``; introspection against Redis).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, TypeVar

from shared.lru import ExpiringLRU

T = TypeVar("T")


def fingerprint(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class VerifiedTokens:
    """At most ``size`` tokens' claims (none when ``size`` <= 0), each until the wall-clock time given.

    Kept compact, as the names of a token's claims (one tuple per set of names, shared by every
    token of that shape) and a tuple of their values, the values every token of a client repeats
    (issuer, audience, client, scope) shared too: about 0.8 KiB a token instead of 1.7 KiB as a
    dict, so a full cache of 10,000 is some 8 MiB rather than 16 (measured, issue 19)."""

    def __init__(self, size: int) -> None:
        self.size = size
        # deadlines are the tokens' own exp (+ leeway): wall-clock seconds, not monotonic ones
        self._entries: ExpiringLRU[bytes, tuple[tuple[str, ...], tuple[Any, ...]]] = ExpiringLRU(
            size, clock=time.time
        )
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._shared: dict[str, str] = {}

    def get(self, key: bytes) -> dict[str, Any] | None:
        """A new dict of the claims (a caller changing it changes nothing here), or None."""
        found = self._entries.get(key)
        return None if found is None else dict(zip(*found, strict=True))

    def put(self, key: bytes, claims: dict[str, Any], until: float) -> None:
        shape = _one_of(self._shapes, tuple(claims), MAX_SHAPES)
        values = tuple(
            _one_of(self._shared, value, MAX_SHARED)
            if name in SHARED_CLAIMS and isinstance(value, str)
            else value
            for name, value in claims.items()
        )
        self._entries.put(key, (shape, values), until=until)


def _one_of(table: dict[T, T], value: T, limit: int) -> T:
    """The one copy of ``value`` kept in ``table``; a full table starts again with those in use now."""
    kept = table.get(value)
    if kept is not None:
        return kept
    if len(table) >= limit:
        table.clear()
    table[value] = value
    return value


# claims whose values many tokens repeat: kept once (bounded: they come from verified tokens only)
SHARED_CLAIMS = frozenset({"iss", "aud", "client_id", "scope", "typ"})
MAX_SHAPES = 256
MAX_SHARED = 4096
