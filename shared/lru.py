"""A bounded, expiring, least-recently-used map: every in-process cache uses it.

A cache that strangers can fill (made-up client ids, tokens, URLs) must have a size it never
exceeds and entries that leave on their own; this is that, and nothing more.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringLRU(Generic[K, V]):
    """At most ``max_entries`` entries, each until its own deadline (on ``clock``'s scale)."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: K) -> bool:
        return self.get(key) is not None

    def get(self, key: K) -> V | None:
        """The value while it is fresh (and it becomes the most recently used), else ``None``."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, *, until: float) -> None:
        """Keep ``value`` until the deadline ``until``, evicting the least recently used beyond the bound."""
        if self.max_entries <= 0:
            return
        self._entries[key] = (until, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def held_keys(self) -> list[K]:
        """The keys held (fresh or not yet found stale), least recently used first."""
        return list(self._entries)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
