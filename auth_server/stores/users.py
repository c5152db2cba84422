"""The ``users`` table. Passwords arrive here already hashed with argon2id."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


# The profile columns, by the OpenID Connect standard claim each holds (Core §5.1).
PROFILE_FIELDS = ("email", "email_verified", "name", "nickname", "picture", "locale", "zoneinfo")

_PROFILE_COLUMNS = f"{', '.join(PROFILE_FIELDS)}, updated_at"


@dataclass(frozen=True, slots=True)
class Profile:
    """What a user's standard claims are made of (OpenID Connect Core §5.1)."""

    user_id: uuid.UUID
    username: str
    email: str | None
    email_verified: bool
    name: str | None
    nickname: str | None
    picture: str | None
    locale: str | None
    zoneinfo: str | None
    updated_at: datetime


class UsernameTaken(ValueError):
    pass


class EmailVerification(enum.Enum):
    """What verifying an address came to (:meth:`UserStore.verify_email`)."""

    VERIFIED = "verified"
    ADDRESS_CHANGED = "address_changed"  # the user's address is another one now
    VERIFIED_BY_ANOTHER = "verified_by_another"  # another account verified it first


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user as an operator lists them: never the password hash."""

    user_id: uuid.UUID
    username: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NamedUser:
    user_id: uuid.UUID
    username: str


@dataclass(frozen=True, slots=True)
class SameCanonicalName:
    """Users whose names have one canonical form, which only ``keeps`` can hold: each user in
    ``rename`` needs another name before signing in."""

    canonical: str
    keeps: NamedUser
    rename: tuple[NamedUser, ...]


@dataclass(frozen=True, slots=True)
class Recanonicalized:
    changed: int
    collisions: tuple[SameCanonicalName, ...]


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

    async def recanonicalize(self) -> Recanonicalized:
        """Store the exact canonical form of every name whose stored form may differ from it.

        Migration 005's SQL backfill only approximates the form, and a newer Unicode database in
        Python (or an operator renaming a user in SQL) can change it, so ``tessera migrate`` runs this
        every time. Where a corrected form would equal a name another user holds, the user who holds
        it keeps it, the others keep their old stored form and are reported (they cannot sign in
        until renamed); every other name is corrected. Cheap when there is nothing to do: one scan,
        and no lock unless a name must change.
        """
        async with self._pool.acquire() as conn:
            if not _changes(await conn.fetch(_INEXACT_CANDIDATES)):
                return Recanonicalized(changed=0, collisions=())
            async with conn.transaction():
                # no name is registered while the names move (registration waits, and fails or not
                # on the final forms); two `tessera migrate` runs at once take turns here
                await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                changes = _changes(await conn.fetch(_INEXACT_CANDIDATES))
                holders = {
                    row["username_canonical"]: _Named.of(row)
                    for row in await conn.fetch(
                        "SELECT user_id, username, username_canonical, created_at FROM users"
                        " WHERE username_canonical = ANY($1::text[])",
                        sorted(set(changes.values())),
                    )
                }
                moves, collisions = _settle(changes, holders)
                ids = [user.user_id for user in moves]
                # every moving form is parked first: the unique index is checked row by row, and a
                # form may move onto one that another moving form has yet to leave
                await conn.execute(
                    "UPDATE users SET username_canonical = $2 || user_id::text"
                    " WHERE user_id = ANY($1::uuid[])",
                    ids,
                    _PARKED,
                )
                await conn.execute(
                    "UPDATE users SET username_canonical = moved.canonical"
                    " FROM unnest($1::uuid[], $2::text[]) AS moved (user_id, canonical)"
                    " WHERE users.user_id = moved.user_id",
                    ids,
                    list(moves.values()),
                )
        return Recanonicalized(changed=len(moves), collisions=collisions)

    async def collisions_under_backfill(self) -> tuple[SameCanonicalName, ...]:
        """Users whose names migration 005's SQL backfill maps to one value, so that it cannot build
        its unique index; asked of the table as migration 004 left it. The oldest user keeps the name."""
        rows = await self._pool.fetch(
            "SELECT user_id, username, canonical, created_at FROM ("
            " SELECT user_id, username, created_at, lower(normalize(username, NFKC)) AS canonical,"
            " count(*) OVER (PARTITION BY lower(normalize(username, NFKC))) AS sharing FROM users"
            ") AS backfilled WHERE sharing > 1 ORDER BY canonical, created_at, user_id"
        )
        groups: dict[str, list[NamedUser]] = {}
        for row in rows:
            groups.setdefault(row["canonical"], []).append(NamedUser(row["user_id"], row["username"]))
        return tuple(
            SameCanonicalName(canonical, keeps=users[0], rename=tuple(users[1:]))
            for canonical, users in groups.items()
        )

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, username, password_hash FROM users WHERE user_id = $1", user_id
        )
        return None if row is None else User(**dict(row))

    async def list(self) -> list[UserSummary]:
        rows = await self._pool.fetch(
            "SELECT user_id, username, created_at FROM users ORDER BY created_at, user_id"
        )
        return [UserSummary(**dict(row)) for row in rows]

    async def summary(self, user_id: uuid.UUID) -> UserSummary | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, username, created_at FROM users WHERE user_id = $1", user_id
        )
        return None if row is None else UserSummary(**dict(row))

    async def update(
        self, user_id: uuid.UUID, *, username: str | None = None, password_hash: str | None = None
    ) -> User | None:
        """Rename a user and/or set a new password hash; ``None`` if there is no such user."""
        try:
            row = await self._pool.fetchrow(
                "UPDATE users SET username = coalesce($2, username),"
                " username_canonical = coalesce($3, username_canonical),"
                " password_hash = coalesce($4, password_hash)"
                " WHERE user_id = $1 RETURNING user_id, username, password_hash",
                user_id,
                username,
                None if username is None else canonical(username),
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            raise UsernameTaken(f"username {username!r} is taken") from None
        return None if row is None else User(**dict(row))

    async def profile(self, user_id: uuid.UUID) -> Profile | None:
        row = await self._pool.fetchrow(
            f"SELECT user_id, username, {_PROFILE_COLUMNS} FROM users WHERE user_id = $1", user_id
        )
        return None if row is None else Profile(**dict(row))

    async def set_profile(self, user_id: uuid.UUID, changes: dict[str, Any]) -> Profile | None:
        """Set some profile fields (by :data:`PROFILE_FIELDS` name; a value of ``None`` clears one).

        Changing the email makes it unverified unless ``email_verified`` is set in the same call.
        """
        unknown = set(changes) - set(PROFILE_FIELDS)
        if unknown:
            raise ValueError(f"not profile fields: {', '.join(sorted(unknown))}")
        if "email" in changes and "email_verified" not in changes:
            changes = {**changes, "email_verified": False}
        if "email_verified" in changes and changes["email_verified"] is None:
            changes = {**changes, "email_verified": False}
        assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(changes, start=2))
        row = await self._pool.fetchrow(
            f"UPDATE users SET {assignments + ', ' if changes else ''}updated_at = now() WHERE user_id = $1"
            f" RETURNING user_id, username, {_PROFILE_COLUMNS}",
            user_id,
            *changes.values(),
        )
        return None if row is None else Profile(**dict(row))

    async def is_admin(self, user_id: uuid.UUID) -> bool:
        """Whether the user is a platform operator (reviews applications, uses the admin API)."""
        return bool(await self._pool.fetchval("SELECT is_admin FROM users WHERE user_id = $1", user_id))

    async def set_admin(self, user_id: uuid.UUID, admin: bool) -> bool:
        result = await self._pool.execute("UPDATE users SET is_admin = $2 WHERE user_id = $1", user_id, admin)
        return bool(result.endswith(" 1"))

    async def delete(self, user_id: uuid.UUID) -> bool:
        """Delete a user (their consents go with them); the caller revokes their tokens."""
        deleted = await self._pool.fetchval("DELETE FROM users WHERE user_id = $1 RETURNING true", user_id)
        return deleted is True

    # --- sign-up, email verification and password reset (issue 18) ----------------------------------

    async def sign_up(self, username: str, password_hash: str, *, email: str, nickname: str | None) -> User:
        """A new account whose email address is not verified yet; :class:`UsernameTaken` if the name
        (in its canonical form) is. An address may stand on several accounts until one verifies it
        (:meth:`verify_email`), so that nobody can hold someone else's address by signing up first."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO users (user_id, username, username_canonical, password_hash, email,"
                " email_verified, nickname) VALUES ($1, $2, $3, $4, $5, false, $6)"
                " RETURNING user_id, username, password_hash",
                uuid.uuid4(),
                username,
                canonical(username),
                password_hash,
                email,
                nickname,
            )
        except asyncpg.UniqueViolationError:
            raise UsernameTaken(f"username {username!r} is taken") from None
        assert row is not None
        return User(**dict(row))

    async def replace_password(self, user_id: uuid.UUID, old_hash: str, new_hash: str) -> bool:
        """Set a new password hash if the user's is still ``old_hash`` (a password reset: whatever
        changed the password since the link was sent wins, and the link does nothing)."""
        result = await self._pool.execute(
            "UPDATE users SET password_hash = $3 WHERE user_id = $1 AND password_hash = $2",
            user_id,
            old_hash,
            new_hash,
        )
        return bool(result.endswith(" 1"))

    async def with_email(self, email: str) -> tuple[Profile, ...]:
        """The users whose email is ``email`` (compared in lower case), oldest first."""
        rows = await self._pool.fetch(
            f"SELECT user_id, username, {_PROFILE_COLUMNS} FROM users WHERE lower(email) = lower($1)"
            " ORDER BY created_at, user_id",
            email,
        )
        return tuple(Profile(**dict(row)) for row in rows)

    async def email_verified_by_another(self, user_id: uuid.UUID, email: str) -> bool:
        """Whether another user has verified ``email`` (compared in lower case)."""
        return bool(
            await self._pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2) AND email_verified"
                " AND user_id <> $1)",
                user_id,
                email,
            )
        )

    async def verify_email(self, user_id: uuid.UUID, email: str) -> EmailVerification:
        """Mark ``email`` verified for the user, if it is still their address and no other user has
        verified it (checked and set under a lock on the address, so two accounts racing to verify
        one address cannot both win)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(lower($1), 18))", email)
            current = await conn.fetchrow(
                "SELECT email, email_verified FROM users WHERE user_id = $1 FOR UPDATE", user_id
            )
            if current is None or current["email"] is None or current["email"].lower() != email.lower():
                return EmailVerification.ADDRESS_CHANGED
            if current["email_verified"]:
                return EmailVerification.VERIFIED
            taken = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2) AND email_verified"
                " AND user_id <> $1)",
                user_id,
                email,
            )
            if taken:
                return EmailVerification.VERIFIED_BY_ANOTHER
            await conn.execute(
                "UPDATE users SET email_verified = true, updated_at = now() WHERE user_id = $1", user_id
            )
            return EmailVerification.VERIFIED


# The rows whose stored form can differ from the exact one: a name that is not pure ASCII, or an
# ASCII name not stored as its ASCII lower case (for ASCII the backfill is exact, unless the
# database's locale lowercases ASCII its own way, as tr_TR does with I).
_INEXACT_CANDIDATES = (
    "SELECT user_id, username, username_canonical, created_at FROM users"
    " WHERE username ~ '[^[:ascii:]]'"
    " OR username_canonical"
    " <> translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
)

# No canonical form contains U+212B ANGSTROM SIGN (NFKC turns it into U+00C5), nor does the SQL
# backfill produce one: a form parked under it, followed by the user id, collides with nothing.
_PARKED = "\u212b"


@dataclass(frozen=True, slots=True)
class _Named:
    user: NamedUser
    stored: str
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> _Named:
        return cls(NamedUser(row["user_id"], row["username"]), row["username_canonical"], row["created_at"])


def _changes(rows: list[asyncpg.Record]) -> dict[_Named, str]:
    """Each user whose stored form is not the exact one, and the exact one."""
    named = [_Named.of(row) for row in rows]
    return {n: exact for n in named if (exact := canonical(n.user.username)) != n.stored}


def _settle(
    changes: dict[_Named, str], holders: dict[str, _Named]
) -> tuple[dict[NamedUser, str], tuple[SameCanonicalName, ...]]:
    """The moves that can be made (user -> new form) and the collisions that stop the others.

    ``holders`` are the users now storing a form some move wants. A form goes to the user who keeps
    holding it, else to the oldest user wanting it; a user who cannot move keeps its stored form,
    which can in turn stop another move, so this repeats until nothing changes.
    """
    stuck: set[_Named] = set()
    while True:
        owner = {n.stored: n for n in [*holders.values(), *stuck] if n not in changes or n in stuck}
        blocked: set[_Named] = set()
        for wanting in sorted(changes.keys() - stuck, key=_age):
            if owner.setdefault(changes[wanting], wanting) != wanting:
                blocked.add(wanting)
        if not blocked:
            break
        stuck |= blocked
    moves = {n.user: form for n, form in changes.items() if n not in stuck}
    renames: dict[str, list[NamedUser]] = {}
    for named in sorted(stuck, key=_age):
        renames.setdefault(changes[named], []).append(named.user)
    collisions = tuple(
        SameCanonicalName(form, keeps=owner[form].user, rename=tuple(users))
        for form, users in renames.items()
    )
    return moves, collisions


def _age(named: _Named) -> tuple[datetime, str]:
    """Oldest first (the user id settles a tie)."""
    return named.created_at, str(named.user.user_id)
