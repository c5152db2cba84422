"""A user's second steps (issue 18): her authenticator app's seed, her recovery codes, her passkeys.

Two-step sign-in is *on* for a user with a confirmed authenticator app or at least one passkey
(:meth:`TwoStepStore.status`). The TOTP seed is encrypted under the key-encryption key
(AES-256-GCM, the user id bound as associated data, so a seed cannot be moved to another user's
row) as signing keys are, and re-encrypted by ``tessera keys rewrap`` with them
(:meth:`TwoStepStore.rewrap_all`). Recovery codes are stored as their SHA-256 and spent with one
``UPDATE ... WHERE used_at IS NULL`` (once, even when two replicas race). Passkeys hold public keys
only.

The TOTP replay guard is in Redis, shared by every replica: the last time step a user's code was
accepted for, with a script that accepts a step only if it is later (RFC 6238 §5.2: a used code,
and any code before it, is refused).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from redis.asyncio import Redis

from auth_server.crypto import KeyEncryption
from shared.redis import Keys

# KEYS: the user's last accepted step. ARGV: the step, how long to remember it (s). 1: accepted.
_USE_STEP = """
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if last >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
STEP_MEMORY = 180  # seconds: longer than the window of steps a code is accepted in (3 x 30 s)


@dataclass(frozen=True, slots=True)
class Passkey:
    credential_id: bytes
    user_id: uuid.UUID
    name: str
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None

    @property
    def handle(self) -> str:
        """The credential id as a page names it (hex)."""
        return self.credential_id.hex()


@dataclass(frozen=True, slots=True)
class TwoStepStatus:
    totp: bool  # a confirmed authenticator app
    passkeys: tuple[Passkey, ...]
    recovery_codes_left: int

    @property
    def on(self) -> bool:
        return self.totp or bool(self.passkeys)

    @property
    def methods(self) -> int:
        """How many second steps she has (the app counts as one, each passkey as one)."""
        return int(self.totp) + len(self.passkeys)


_PASSKEY_COLUMNS = (
    "credential_id, user_id, name, public_key, sign_count, transports, backed_up, created_at, last_used_at"
)


def _passkey(row: asyncpg.Record) -> Passkey:
    return Passkey(**{**dict(row), "transports": tuple(row["transports"])})


def _context(user_id: uuid.UUID) -> str:
    return f"totp-seed:{user_id}"


class TwoStepStore:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, keys: Keys, kek: KeyEncryption) -> None:
        self._pool = pool
        self._keys = keys
        self._kek = kek
        self._use_step = redis.register_script(_USE_STEP)

    async def status(self, user_id: uuid.UUID) -> TwoStepStatus:
        async with self._pool.acquire() as conn:
            totp = await conn.fetchval(
                "SELECT confirmed_at IS NOT NULL FROM totp_authenticators WHERE user_id = $1", user_id
            )
            rows = await conn.fetch(
                f"SELECT {_PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, name",
                user_id,
            )
            left = await conn.fetchval(
                "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL", user_id
            )
        return TwoStepStatus(bool(totp), tuple(_passkey(r) for r in rows), int(left))

    async def enabled(self, user_id: uuid.UUID) -> bool:
        """Whether signing in with her password needs a second step."""
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM totp_authenticators WHERE user_id = $1"
                " AND confirmed_at IS NOT NULL) OR EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)",
                user_id,
            )
        )

    # -- the authenticator app (TOTP) ---------------------------------------------------------------

    async def start_totp(self, user_id: uuid.UUID, secret: str) -> bool:
        """Keep ``secret`` as the app she is setting up (replacing one she did not finish); False if
        she already has a confirmed one (it must be turned off first)."""
        wrapped = self._kek.encrypt(secret.encode(), _context(user_id))
        status = await self._pool.execute(
            "INSERT INTO totp_authenticators (user_id, secret_encrypted, kek_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (user_id) DO UPDATE SET secret_encrypted = excluded.secret_encrypted,"
            " kek_id = excluded.kek_id, created_at = now() WHERE totp_authenticators.confirmed_at IS NULL",
            user_id,
            wrapped.blob,
            wrapped.kek_id,
        )
        return bool(status.endswith(" 1"))

    async def totp_secret(self, user_id: uuid.UUID, *, confirmed: bool = True) -> str | None:
        """The seed of her app (``confirmed``), or of the one she is setting up (not ``confirmed``)."""
        row = await self._pool.fetchrow(
            "SELECT secret_encrypted, kek_id FROM totp_authenticators WHERE user_id = $1"
            " AND (confirmed_at IS NOT NULL) = $2",
            user_id,
            confirmed,
        )
        if row is None:
            return None
        return self._kek.decrypt(row["secret_encrypted"], _context(user_id), row["kek_id"]).decode()

    async def confirm_totp(self, user_id: uuid.UUID) -> bool:
        """Turn on the app she is setting up (she typed a code from it); False if there is none."""
        status = await self._pool.execute(
            "UPDATE totp_authenticators SET confirmed_at = now() WHERE user_id = $1 AND confirmed_at IS NULL",
            user_id,
        )
        return bool(status.endswith(" 1"))

    async def remove_totp(self, user_id: uuid.UUID) -> bool:
        """Turn her app off; with no passkey left, her recovery codes go too (two-step is off)."""
        async with self._pool.acquire() as conn, conn.transaction():
            removed = await conn.fetchval(
                "DELETE FROM totp_authenticators WHERE user_id = $1 RETURNING confirmed_at IS NOT NULL",
                user_id,
            )
            await self._forget_codes_if_off(conn, user_id)
        return bool(removed)

    async def use_step(self, user_id: uuid.UUID, step: int) -> bool:
        """Accept a code of time step ``step`` for this user, once: False if a code of this step or
        a later one was accepted already (every replica sees it)."""
        key = self._keys("totp-step", str(user_id))
        return bool(await self._use_step(keys=[key], args=[step, STEP_MEMORY]))

    # -- recovery codes -----------------------------------------------------------------------------

    async def replace_recovery_codes(self, user_id: uuid.UUID, hashes: list[bytes]) -> None:
        """Her recovery codes are now these (the old ones, used or not, stop working)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
            await conn.executemany(
                "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
                [(user_id, h) for h in hashes],
            )

    async def use_recovery_code(self, user_id: uuid.UUID, code_hash: bytes) -> bool:
        """Spend one of her unused codes; False if it is not one (or was used)."""
        status = await self._pool.execute(
            "UPDATE recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2"
            " AND used_at IS NULL",
            user_id,
            code_hash,
        )
        return bool(status.endswith(" 1"))

    # -- passkeys -----------------------------------------------------------------------------------

    async def add_passkey(
        self,
        user_id: uuid.UUID,
        *,
        credential_id: bytes,
        name: str,
        public_key: bytes,
        sign_count: int,
        transports: tuple[str, ...],
        backed_up: bool,
    ) -> Passkey | None:
        """Keep a new passkey; ``None`` if that credential is registered already (to anyone)."""
        row = await self._pool.fetchrow(
            "INSERT INTO passkeys (credential_id, user_id, name, public_key, sign_count, transports,"
            " backed_up) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (credential_id) DO NOTHING"
            f" RETURNING {_PASSKEY_COLUMNS}",
            credential_id,
            user_id,
            name,
            public_key,
            sign_count,
            list(transports),
            backed_up,
        )
        return None if row is None else _passkey(row)

    async def passkey(self, credential_id: bytes) -> Passkey | None:
        row = await self._pool.fetchrow(
            f"SELECT {_PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1", credential_id
        )
        return None if row is None else _passkey(row)

    async def passkeys(self, user_id: uuid.UUID) -> list[Passkey]:
        rows = await self._pool.fetch(
            f"SELECT {_PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, name", user_id
        )
        return [_passkey(r) for r in rows]

    async def passkey_used(self, credential_id: bytes, sign_count: int) -> None:
        await self._pool.execute(
            "UPDATE passkeys SET sign_count = greatest(sign_count, $2), last_used_at = now()"
            " WHERE credential_id = $1",
            credential_id,
            sign_count,
        )

    async def remove_passkey(self, user_id: uuid.UUID, credential_id: bytes) -> bool:
        """Remove one of her passkeys; with no second step left, her recovery codes go too."""
        async with self._pool.acquire() as conn, conn.transaction():
            removed = await conn.fetchval(
                "DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2 RETURNING true",
                user_id,
                credential_id,
            )
            await self._forget_codes_if_off(conn, user_id)
        return removed is True

    async def _forget_codes_if_off(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
        await conn.execute(
            "DELETE FROM recovery_codes WHERE user_id = $1 AND NOT EXISTS (SELECT 1 FROM"
            " totp_authenticators WHERE user_id = $1 AND confirmed_at IS NOT NULL) AND NOT EXISTS"
            " (SELECT 1 FROM passkeys WHERE user_id = $1)",
            user_id,
        )

    # -- key-encryption key rotation ------------------------------------------------------------------

    async def rewrap_all(self) -> tuple[int, dict[str, int]]:
        """Re-encrypt every TOTP seed not under the current key-encryption key (``tessera keys
        rewrap``), in one transaction; (how many, the KEK id that opened them -> how many).
        :class:`~auth_server.crypto.UnwrapError` (nothing changed) if a seed opens under no
        configured KEK."""
        opened_by: dict[str, int] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT user_id, secret_encrypted, kek_id FROM totp_authenticators"
                " WHERE kek_id <> $1 FOR UPDATE",
                self._kek.current_id,
            )
            for row in rows:
                context = _context(row["user_id"])
                secret, kek_id = self._kek.unwrap(row["secret_encrypted"], context, row["kek_id"])
                wrapped = self._kek.encrypt(secret, context)
                await conn.execute(
                    "UPDATE totp_authenticators SET secret_encrypted = $2, kek_id = $3 WHERE user_id = $1",
                    row["user_id"],
                    wrapped.blob,
                    wrapped.kek_id,
                )
                opened_by[kek_id] = opened_by.get(kek_id, 0) + 1
        return len(rows), opened_by
