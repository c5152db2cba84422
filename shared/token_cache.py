"""Claims of access tokens already verified, kept until they expire: signature checks are the
costliest step of validating a token, and a client presents the same token many times.

Keyed by the SHA-256 of the token (the cache holds no usable token), bounded, least recently used
first out. Revocation is not cached here: whoever needs it checks it on every use, cache hits
included (``TokenValidator`` with a ``RevocationList``; introspection against Redis).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from shared.lru import ExpiringLRU


def fingerprint(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class VerifiedTokens:
    """At most ``size`` tokens' claims (none when ``size`` <= 0), each until the wall-clock time given."""

    def __init__(self, size: int) -> None:
        self.size = size
        # deadlines are the tokens' own exp (+ leeway): wall-clock seconds, not monotonic ones
        self._entries: ExpiringLRU[bytes, dict[str, Any]] = ExpiringLRU(size, clock=time.time)

    def get(self, key: bytes) -> dict[str, Any] | None:
        """A copy of the claims (a caller changing them changes nothing here), or None."""
        claims = self._entries.get(key)
        return None if claims is None else dict(claims)

    def put(self, key: bytes, claims: dict[str, Any], until: float) -> None:
        self._entries.put(key, dict(claims), until=until)
