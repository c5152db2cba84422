"""Random tokens, their hashes, passwords and key encryption: every secret Tessera handles.

* Codes, refresh tokens, client secrets and session ids are 256-bit random values; only their
  SHA-256 digest is stored, and digests are compared in constant time. (High-entropy secrets need
  no slow KDF — a bcrypt'd client secret is why other servers cap at ~100 tokens/s.)
* User passwords are hashed with argon2id at OWASP's recommended parameters, off the event loop.
* Private signing keys are encrypted at rest with AES-256-GCM under the key-encryption key.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import hmac
import math
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_BYTES = 32  # 256 bits


def new_token() -> str:
    """A URL-safe random string carrying 256 bits of entropy."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(secret: str) -> bytes:
    """The SHA-256 digest under which a high-entropy secret is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def hexdigest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def digest_matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored)


# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)
# Verified when the user does not exist, so that a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _yield_to_the_event_loop() -> None:
    """Hashing threads run at a lower priority (nice 5, this thread only): under a login storm the
    logins take about a quarter of a busy core, and every other request keeps its latency."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup CPU quota (a container's
    limit, which affinity does not show: a 1-CPU pod on a 16-core node sees 16)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, where there is one (not on macOS or musl)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


class _HashingThreads:
    """The argon2id threads: one per usable core by default. More would only queue for the same
    cores, each holding 19 MiB while it hashes, so a login storm cannot run a pod out of memory."""

    def __init__(self) -> None:
        self.size = 0  # 0: usable_cores()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in_flight = 0

    def verify(self, stored: str | None, password: str) -> bool:
        """One verification in a hashing thread. The last one of a burst hands the freed hashing
        memory back to the system: glibc keeps a freed 19 MiB block for the next hash otherwise,
        and a login storm would leave the process 19 MiB per thread larger for good."""
        with self._lock:
            self._in_flight += 1
        try:
            return _verify(stored, password)
        finally:
            with self._lock:
                self._in_flight -= 1
                idle = self._in_flight == 0
            if idle and _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)

    def configure(self, size: int) -> None:
        if size == self.size:
            return
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self.size = size

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.size or usable_cores(),
                thread_name_prefix="argon2",
                initializer=_yield_to_the_event_loop,
            )
        return self._executor


HASHING = _HashingThreads()


async def verify_password(stored: str | None, password: str) -> bool:
    """Check ``password`` against an argon2id hash in a hashing thread; ``None`` costs the same and fails."""
    return await asyncio.get_running_loop().run_in_executor(
        HASHING.executor, HASHING.verify, stored, password
    )


class KeyEncryption:
    """AES-256-GCM with the key id bound as associated data (a blob cannot be moved to another key)."""

    NONCE_BYTES = 12

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(self.NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        nonce, ciphertext = blob[: self.NONCE_BYTES], blob[self.NONCE_BYTES :]
        return self._aead.decrypt(nonce, ciphertext, context.encode())
