"""Random tokens, their hashes, passwords and key encryption: every secret Tessera handles.

* Codes, refresh tokens, client secrets and session ids are 256-bit random values; only their
  SHA-256 digest is stored, and digests are compared in constant time. (High-entropy secrets need
  no slow KDF — a bcrypt'd client secret is why other servers cap at ~100 tokens/s.)
* User passwords are hashed with argon2id at OWASP's recommended parameters, off the event loop.
* Private signing keys are encrypted at rest with AES-256-GCM under the key-encryption key (KEK);
  older KEKs may be kept for decryption only, while ``tessera keys rewrap`` moves keys off them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
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


class HashingBusy(Exception):
    """Every place for a password check is taken (see :meth:`_HashingThreads.admit`)."""


class _HashingThreads:
    """The argon2id threads: one per usable core by default. More would only queue for the same
    cores, each keeping 19 MiB once it has hashed (see :meth:`verify`), so the threads, not a
    login storm, bound what hashing holds."""

    def __init__(self) -> None:
        self.size = 0  # 0: usable_cores()
        self.queue_per_thread = 64
        self._executor: ThreadPoolExecutor | None = None
        self._admitted = 0  # password checks admitted and not finished (event loop only)

    @property
    def capacity(self) -> int:
        """How many password checks may be admitted at once: the rest are refused, not queued."""
        return (self.size or usable_cores()) * self.queue_per_thread

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for one password check, or raise :class:`HashingBusy` when every place is
        taken: a login storm gets a quick refusal with Retry-After, never an unbounded wait."""
        if self._admitted >= self.capacity:
            raise HashingBusy()
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    def verify(self, stored: str | None, password: str) -> bool:
        """One verification in a hashing thread.

        Each thread keeps its 19 MiB block once it has hashed: glibc gives a thread an arena of
        its own and keeps the freed block at its top for the next hash (``malloc_trim`` does not
        reach it, measured). That is the price of not faulting 19 MiB in again per hash: with
        ``MALLOC_ARENA_MAX=1`` in the environment the block goes back after each hash, at about
        3 ms more per hash (``deploy/CAPACITY.md``)."""
        return _verify(stored, password)

    def configure(self, size: int, queue_per_thread: int = 64) -> None:
        self.queue_per_thread = queue_per_thread
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


class UnwrapError(InvalidTag):
    """No configured key-encryption key opens a blob. ``reason`` says why, naming KEKs by id only."""

    def __init__(self, context: str, reason: str) -> None:
        super().__init__(f"cannot decrypt {context!r}: {reason}")
        self.context = context
        self.reason = reason


class Wrapped(NamedTuple):
    """A blob encrypted by :meth:`KeyEncryption.encrypt`, and the id of the KEK that encrypted it."""

    blob: bytes
    kek_id: str


def kek_id_of(key: bytes) -> str:
    """A key-encryption key's version id: short, stable, and safe to store and print.

    An HMAC keyed by the KEK over a fixed label (a key check value), not a plain hash of the key:
    keyed and domain-separated, it identifies the key here and matches no digest or fingerprint
    that any other tool computes of the same 32 bytes.
    """
    return hmac.new(key, b"tessera-kek-id", hashlib.sha256).hexdigest()[:16]


class KeyEncryption:
    """A keyring of key-encryption keys: AES-256-GCM with the key id bound as associated data (a
    blob cannot be moved to another key).

    The current KEK encrypts everything new; previous ones only decrypt, so that every replica can
    read keys wrapped under either KEK while ``tessera keys rewrap`` moves them to the current one.
    Each blob's KEK is named by the ``kek_id`` stored beside it; ``None`` (a row from before ids
    were recorded) means "whichever configured KEK opens it", the current one tried first.
    """

    NONCE_BYTES = 12

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        self._keys: dict[str, AESGCM] = {kek_id_of(current): AESGCM(current)}
        for key in previous:
            self._keys.setdefault(kek_id_of(key), AESGCM(key))
        self.current_id = kek_id_of(current)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every configured KEK's id, the current one first."""
        return tuple(self._keys)

    def encrypt(self, plaintext: bytes, context: str) -> Wrapped:
        nonce = os.urandom(self.NONCE_BYTES)
        blob = nonce + self._keys[self.current_id].encrypt(nonce, plaintext, context.encode())
        return Wrapped(blob, self.current_id)

    def unwrap(self, blob: bytes, context: str, kek_id: str | None = None) -> tuple[bytes, str]:
        """The plaintext and the id of the KEK that opened it: the one ``kek_id`` names, or with
        ``None`` each configured KEK in turn. Raises :class:`UnwrapError` if none does."""
        nonce, ciphertext = blob[: self.NONCE_BYTES], blob[self.NONCE_BYTES :]
        if kek_id is not None:
            aead = self._keys.get(kek_id)
            if aead is None:
                raise UnwrapError(
                    context,
                    f"it is wrapped under key-encryption key {kek_id}, which is not configured"
                    f" (configured: {self._describe()})",
                )
            try:
                return aead.decrypt(nonce, ciphertext, context.encode()), kek_id
            except InvalidTag:
                raise UnwrapError(
                    context,
                    f"it does not authenticate under its key-encryption key {kek_id}: altered, or"
                    " moved from another key",
                ) from None
        for candidate, aead in self._keys.items():
            try:
                return aead.decrypt(nonce, ciphertext, context.encode()), candidate
            except InvalidTag:
                continue
        raise UnwrapError(
            context, f"none of the configured key-encryption keys ({self._describe()}) opens it"
        )

    def decrypt(self, blob: bytes, context: str, kek_id: str | None = None) -> bytes:
        return self.unwrap(blob, context, kek_id)[0]

    def _describe(self) -> str:
        return ", ".join(f"{i} (current)" if i == self.current_id else i for i in self._keys)
