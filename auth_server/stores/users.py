"""The ``users`` table. Passwords arrive here already hashed with argon2id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from auth_server.usernames import canonical


@dataclass(frozen=True, slots=True)
class User:
    user_id: uuid.UUID
    username: str
    password_hash: str

    @property
    def subject(self) -> str:
        """The ``sub`` of this user's tokens: stable and never reassigned, unlike a username."""
        return str(self.user_id)


class UsernameTaken(ValueError):
    pass


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, username: str, password_hash: str) -> User:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO users (user_id, username, username_canonical, password_hash)"
                " VALUES ($1, $2, $3, $4) RETURNING user_id, username, password_hash",
                uuid.uuid4(),
                username,
                canonical(username),
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            raise UsernameTaken(f"username {username!r} is taken") from None
        assert row is not None
        return User(**dict(row))

    async def by_username(self, username: str) -> User | None:
        """The user whose name has the same canonical form (:mod:`auth_server.usernames`)."""
        row = await self._pool.fetchrow(
            "SELECT user_id, username, password_hash FROM users WHERE username_canonical = $1",
            canonical(username),
        )
        return None if row is None else User(**dict(row))

    async def recanonicalize(self) -> int:
        """Recompute every stored canonical name (after the SQL backfill of migration 005, which
        can only approximate it); return how many changed."""
        changed = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch("SELECT user_id, username, username_canonical FROM users FOR UPDATE"):
                name = canonical(row["username"])
                if name != row["username_canonical"]:
                    await conn.execute(
                        "UPDATE users SET username_canonical = $2 WHERE user_id = $1", row["user_id"], name
                    )
                    changed += 1
        return changed

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, username, password_hash FROM users WHERE user_id = $1", user_id
        )
        return None if row is None else User(**dict(row))
