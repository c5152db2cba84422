"""Claims of access tokens already verified, kept until they expire: signature checks are the
costliest step of validating a token, and a client presents the same token many times.

Keyed by the SHA-256 of the token (the cache holds no usable token), bounded, least recently used
first out. Revocation is not cached here: whoever needs it checks it on every use, cache hits
included (``TokenValidator`` with a ``RevocationList``; introspection against Redis).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any


def fingerprint(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class VerifiedTokens:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: bytes) -> dict[str, Any] | None:
        """A copy of the claims (a caller changing them changes nothing here), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.time():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return dict(entry[1])

    def put(self, key: bytes, claims: dict[str, Any], until: float) -> None:
        if self.size <= 0:
            return
        self._entries[key] = (until, dict(claims))
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
