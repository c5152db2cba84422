"""The ``photos`` table. A user only ever reaches their own rows: every query is scoped by owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

_META = "photo_id, owner, title, content_type, size, created_at"


@dataclass(frozen=True, slots=True)
class Photo:
    photo_id: uuid.UUID
    owner: str
    title: str
    content_type: str
    size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Stats:
    owners: int
    photos: int
    bytes: int


class PhotoStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, owner: str, title: str, content_type: str, content: bytes) -> Photo:
        row = await self._pool.fetchrow(
            f"INSERT INTO photos (photo_id, owner, title, content_type, size, content)"
            f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_META}",
            uuid.uuid4(),
            owner,
            title,
            content_type,
            len(content),
            content,
        )
        assert row is not None
        return Photo(**dict(row))

    async def page(
        self, owner: str, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Photo]:
        """Newest first; ``before`` is (created_at, id) of the previous page's last photo (keyset)."""
        if before is None:
            rows = await self._pool.fetch(
                f"SELECT {_META} FROM photos WHERE owner = $1"
                " ORDER BY created_at DESC, photo_id DESC LIMIT $2",
                owner,
                limit,
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT {_META} FROM photos WHERE owner = $1 AND (created_at, photo_id) < ($2, $3)"
                " ORDER BY created_at DESC, photo_id DESC LIMIT $4",
                owner,
                before[0],
                before[1],
                limit,
            )
        return [Photo(**dict(r)) for r in rows]

    async def get(self, owner: str, photo_id: uuid.UUID) -> Photo | None:
        row = await self._pool.fetchrow(
            f"SELECT {_META} FROM photos WHERE owner = $1 AND photo_id = $2", owner, photo_id
        )
        return None if row is None else Photo(**dict(row))

    async def content(self, owner: str, photo_id: uuid.UUID) -> tuple[str, bytes] | None:
        row = await self._pool.fetchrow(
            "SELECT content_type, content FROM photos WHERE owner = $1 AND photo_id = $2", owner, photo_id
        )
        return None if row is None else (row["content_type"], bytes(row["content"]))

    async def delete(self, owner: str, photo_id: uuid.UUID) -> bool:
        result = await self._pool.execute(
            "DELETE FROM photos WHERE owner = $1 AND photo_id = $2", owner, photo_id
        )
        return bool(result.endswith(" 1"))

    async def stats(self) -> Stats:
        row = await self._pool.fetchrow(
            "SELECT count(DISTINCT owner) AS owners, count(*) AS photos,"
            " coalesce(sum(size), 0) AS bytes FROM photos"
        )
        assert row is not None
        return Stats(owners=row["owners"], photos=row["photos"], bytes=int(row["bytes"]))
