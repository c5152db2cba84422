"""The ``users`` table. Passwords arrive here already hashed with argon2id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


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
                "INSERT INTO users (user_id, username, password_hash) VALUES ($1, $2, $3)"
                " RETURNING user_id, username, password_hash",
                uuid.uuid4(),
                username,
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            raise UsernameTaken(f"username {username!r} is taken") from None
        assert row is not None
        return User(**dict(row))

    async def by_username(self, username: str) -> User | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, username, password_hash FROM users WHERE lower(username) = lower($1)", username
        )
        return None if row is None else User(**dict(row))

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, username, password_hash FROM users WHERE user_id = $1", user_id
        )
        return None if row is None else User(**dict(row))
