"""Cheap unique identifiers for the hot path: request ids and access-token ids (``jti``).

``os.urandom`` is a system call, several microseconds each on a virtual machine, and the token
endpoint needs two ids per request. Random bytes are read 4 KiB at a time and handed out in
slices. These ids are public (in headers and in the token), so only uniqueness matters; secrets
(codes, refresh tokens, client secrets) still come from :mod:`secrets` one call each.
A forked worker starts with an empty buffer, so two processes never hand out the same bytes.
"""

from __future__ import annotations

import base64
import os
import threading

_CHUNK = 4096


class _RandomPool:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()  # a fresh one in a forked child: never inherited held
        self._buffer = b""
        self._position = 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._position + size > len(self._buffer):
                self._buffer, self._position = os.urandom(_CHUNK), 0
            start = self._position
            self._position += size
            return self._buffer[start : self._position]


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL._reset)


def random_id(size: int = 16) -> str:
    """``size`` random bytes (128 bits by default), URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(_POOL.take(size)).rstrip(b"=").decode("ascii")
